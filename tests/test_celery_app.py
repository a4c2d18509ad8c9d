"""A Celery project with its imports changed: the app object, the CELERY_* settings, checks."""

import re
import sys
import types
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings

from django_tasks import AsyncResult, Celery, EagerResult, current_app, group, states
from django_tasks import app as app_module
from django_tasks.celery_settings import app_conf
from django_tasks.checks import check_celery_settings, check_settings, check_task_options
from django_tasks.conf import settings
from django_tasks.models import QueuedMessage, TaskResult
from testproject.tasks import add, mul
from tests.celeryproj import celery_app
from tests.celeryproj.celery import debug_task
from tests.celeryproj.tasks import always_fails, flaky, hello, total
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CELERY_WORKER = {"TESTS_EXTRA_APPS": "tests.celeryproj"}


@pytest.fixture(autouse=True)
def _clean_app_state():
    """``app.conf`` writes and Celery(...) arguments are process-wide: undone after each test."""
    yield
    app_conf.clear()
    del app_module.ignored_arguments[:]
    settings.reload()


def _queued(result):
    return QueuedMessage.objects.get(task_id=uuid.UUID(result.id))


# -- the project runs -----------------------------------------------------------

def test_the_project_modules_register_their_tasks_as_celery_does():
    assert isinstance(celery_app, Celery)
    assert celery_app.tasks["tests.celeryproj.tasks.hello"] is hello
    assert debug_task.name == "tests.celeryproj.celery.debug_task" and debug_task.bind
    assert debug_task.ignore_result
    assert total.name == "tests.celeryproj.tasks.total"
    assert celery_app.tasks["tests.celeryproj.tasks.total"] is total  # @shared_task


def test_a_celery_project_runs_through_a_worker(start_worker):
    start_worker(env=CELERY_WORKER)
    assert hello.delay("world").get(timeout=30) == "hello world"
    assert flaky.delay(1).get(timeout=30) == 1  # bind=True, self.retry
    assert total.delay([1, 2, 3]).get(timeout=30) == 6  # shared_task
    # A module named by Celery(include=[...]), imported by the worker only.
    assert "tests.celeryproj.included" not in sys.modules
    assert celery_app.send_task("tests.celeryproj.included.triple", [3]).get(timeout=30) == 9
    sent = celery_app.send_task("tests.celeryproj.tasks.hello", ["by name"])
    assert celery_app.AsyncResult(sent.id).get(timeout=30) == "hello by name"
    grouped = group(hello.s("a"), hello.s("b")).delay()
    restored = celery_app.GroupResult(grouped.id, grouped.results)
    assert restored.get(timeout=30) == ["hello a", "hello b"]


def test_retry_kwargs_and_dont_autoretry_for_steer_autoretry(start_worker):
    start_worker(env=CELERY_WORKER)
    retried = always_fails.delay("index")
    with pytest.raises(IndexError, match="attempt 1"):  # max_retries=1, countdown=0
        retried.get(timeout=30)
    assert retried.retries == 1
    not_retried = always_fails.delay("key")
    with pytest.raises(KeyError, match="not retried"):
        not_retried.get(timeout=30)
    assert not_retried.retries == 0


def test_app_control_revoke_takes_an_id_or_a_list():
    one = hello.apply_async(("later",), countdown=600)
    two = hello.apply_async(("later",), countdown=600)
    three = hello.apply_async(("later",), countdown=600)
    assert celery_app.control.revoke(one.id) == 1
    assert current_app.control.revoke([two.id, three.id], terminate=True) == 2
    assert {one.state, two.state, three.state} == {states.REVOKED}


def test_current_app_decorates_like_app_task():
    @current_app.task(bind=True, name="tests.celery_app.bound")
    def bound(self, x):
        return (self.name, x)

    assert bound(1) == ("tests.celery_app.bound", 1)
    assert current_app.tasks["tests.celery_app.bound"] is bound


def test_celery_arguments_are_accepted_and_noted_by_the_checks():
    Celery("proj", broker="redis://localhost:6379/0", backend="redis://", include=["proj.tasks"],
           task_default_queue="from-app")
    notes = {(n.id, n.msg.split(":")[0]) for n in check_celery_settings()}
    assert {("django_tasks.W036", "Celery('proj', broker=...)"),
            ("django_tasks.W036", "Celery('proj', backend=...)")} == notes
    assert settings.DEFAULT_QUEUE == "from-app"  # a setting under Celery's name is used


def test_autodiscover_and_config_from_django_settings_are_accepted():
    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    app.autodiscover_tasks(["tests.celeryproj"])
    app.autodiscover_tasks(lambda: ["tests"])
    assert app_conf == {}


# -- CELERY_* settings ----------------------------------------------------------

def test_celery_serializer_settings_are_used():
    with override_settings(CELERY_TASK_SERIALIZER="pickle",
                           CELERY_ACCEPT_CONTENT=["json", "pickle"]):
        assert settings.SERIALIZER == "pickle"
        assert _queued(add.delay(1, 2)).content_type == "pickle"
        assert celery_app.conf.task_serializer == "pickle"
        assert celery_app.conf.accept_content == ["json", "pickle"]
    assert settings.SERIALIZER == "json"  # reloaded when the setting goes away


def test_celery_acks_late_setting_is_used():
    # Celery's default is False and ours True: a project that set it keeps its choice.
    assert settings.ACKS_LATE is True
    with override_settings(CELERY_TASK_ACKS_LATE=False):
        assert settings.ACKS_LATE is False
    with override_settings(CELERY_ACKS_LATE=False):
        assert settings.ACKS_LATE is False


def test_django_tasks_wins_over_a_celery_setting_and_the_checks_say_so():
    django_tasks = {**settings_dict(), "DEFAULT_QUEUE": "ours"}
    with override_settings(DJANGO_TASKS=django_tasks, CELERY_TASK_DEFAULT_QUEUE="theirs"):
        assert settings.DEFAULT_QUEUE == "ours"
        notes = {n.id: n.msg for n in check_celery_settings()}
    assert notes["django_tasks.I031"] == ("CELERY_TASK_DEFAULT_QUEUE is set, and so is "
                                          "DJANGO_TASKS['DEFAULT_QUEUE'], which is used.")


def settings_dict():
    from django.conf import settings as django_settings

    return dict(django_settings.DJANGO_TASKS)


@pytest.mark.parametrize("name, value, expected", [
    ("CELERY_RESULT_EXPIRES", 3600, timedelta(hours=1)),
    ("CELERY_RESULT_EXPIRES", 1.5, timedelta(seconds=1.5)),
    ("CELERY_RESULT_EXPIRES", timedelta(days=2), timedelta(days=2)),
    ("CELERY_RESULT_EXPIRES", None, None),
    ("CELERY_RESULT_EXPIRES", 0, None),
    ("CELERY_TASK_RESULT_EXPIRES", 60, timedelta(minutes=1)),
])
def test_result_expires_takes_seconds_or_a_timedelta(name, value, expected):
    with override_settings(**{name: value}):
        assert settings.RESULT_EXPIRES == expected
        assert not check_settings()


def test_celery_task_routes_route_exact_names_before_globs():
    routes = {"testproject.tasks.*": {"queue": "globbed", "routing_key": "x.y"},
              "testproject.tasks.add": {"queue": "exact", "exchange": "e", "priority": 4}}
    with override_settings(CELERY_TASK_ROUTES=routes):
        assert not check_settings()
        added = _queued(add.delay(1, 2))
        multiplied = _queued(mul.delay(1, 2))
    assert (added.queue, added.priority) == ("exact", 4)
    assert multiplied.queue == "globbed"
    with override_settings(CELERY_ROUTES=[{"testproject.tasks.mul": {"queue": "first"}},
                                          {"testproject.tasks.mul": {"queue": "second"}}]):
        assert _queued(mul.delay(1, 2)).queue == "first"
    with override_settings(CELERY_TASK_ROUTES={"testproject.tasks.*": "short"}):
        assert _queued(mul.delay(1, 2)).queue == "short"


def test_celery_always_eager_runs_calls_inline():
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        result = add.delay(2, 3)
    assert isinstance(result, EagerResult) and result.get() == 5
    assert not QueuedMessage.objects.exists()


def test_the_default_queue_and_time_limits_come_from_celery_settings():
    with override_settings(CELERY_TASK_DEFAULT_QUEUE="celery", CELERYD_TASK_TIME_LIMIT=30,
                           CELERY_TASK_SOFT_TIME_LIMIT=20):
        assert _queued(add.delay(1, 2)).queue == "celery"
        assert (settings.TIME_LIMIT, settings.SOFT_TIME_LIMIT) == (30, 20)
        assert not check_settings()


def test_a_celery_beat_schedule_is_read_as_ours():
    schedule = {"every-minute": {"task": "testproject.tasks.add", "schedule": 60.0,
                                 "args": (1, 2), "relative": False,
                                 "options": {"queue": "beat", "routing_key": "beat.add",
                                             "exchange": "beat", "expires": 30}}}
    with override_settings(CELERY_BEAT_SCHEDULE=schedule):
        assert settings.BEAT_SCHEDULE == {"every-minute": {
            "task": "testproject.tasks.add", "schedule": 60.0, "args": (1, 2),
            "options": {"queue": "beat", "expires": 30}}}
        assert not check_settings()


@pytest.mark.parametrize("setting, error_id, words", [
    ({"CELERY_RESULT_EXPIRES": "1 day"}, "django_tasks.E005",
     "CELERY_RESULT_EXPIRES (read as DJANGO_TASKS['RESULT_EXPIRES']) must be a positive"),
    ({"CELERY_TASK_SERIALIZER": "yaml"}, "django_tasks.E007",
     "CELERY_TASK_SERIALIZER (read as DJANGO_TASKS['SERIALIZER']) is 'yaml'"),
    ({"CELERY_TASK_ROUTES": ("proj.routers.MyRouter",)}, "django_tasks.E006", "must be a dict"),
    ({"CELERY_TASK_ROUTES": {re.compile(r"a\..*"): "q"}}, "django_tasks.E006",
     "must map a string glob"),
    ({"CELERY_TASK_ROUTES": {"a.*": {"queue": ""}}}, "django_tasks.E006", "non-empty string"),
    ({"CELERY_TASK_ALWAYS_EAGER": "yes"}, "django_tasks.E009", "CELERY_TASK_ALWAYS_EAGER"),
    ({"CELERY_TASK_TIME_LIMIT": -1}, "django_tasks.E010", "CELERY_TASK_TIME_LIMIT"),
    ({"CELERY_BEAT_SCHEDULE": {"x": {"task": "t"}}}, "django_tasks.E019", "needs a 'schedule'"),
])
def test_a_bad_celery_setting_fails_the_same_check_as_ours(setting, error_id, words):
    with override_settings(**setting):
        errors = {error.id: error for error in check_settings()}
    assert words in errors[error_id].msg
    assert errors[error_id].obj == f"settings.{next(iter(setting))}"


def test_the_checks_run_without_a_django_tasks_setting():
    with override_settings(DJANGO_TASKS=None, CELERY_TASK_SERIALIZER="yaml"):
        assert "django_tasks.E007" in {error.id for error in check_settings()}


def test_celery_settings_with_no_meaning_here_are_named_by_the_checks():
    with override_settings(CELERY_BROKER_URL="redis://localhost:6379/0",
                           CELERY_RESULT_BACKEND="django-db",
                           CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 3600}):
        notes = {n.msg: n.id for n in check_celery_settings()}
    assert notes == {
        "CELERY_BROKER_URL is ignored: the database is the broker.": "django_tasks.W030",
        "CELERY_BROKER_TRANSPORT_OPTIONS is ignored: the database is the broker.":
            "django_tasks.W030",
        "CELERY_RESULT_BACKEND is ignored: the database is the result backend.":
            "django_tasks.W030"}


def test_a_celery_timezone_other_than_djangos_is_a_warning():
    with override_settings(TIME_ZONE="UTC", CELERY_TIMEZONE="UTC"):
        assert not check_celery_settings()
    with override_settings(TIME_ZONE="UTC", CELERY_TIMEZONE="Europe/Paris"):
        (note,) = check_celery_settings()
    assert note.id == "django_tasks.W032" and "Django's TIME_ZONE governs" in note.msg


def test_a_result_serializer_is_noted_results_use_the_messages():
    with override_settings(CELERY_RESULT_SERIALIZER="json"):
        assert not check_celery_settings()
    with override_settings(CELERY_RESULT_SERIALIZER="pickle"):
        (note,) = check_celery_settings()
    assert note.id == "django_tasks.I033" and "serializer of the task's own message" in note.msg


def test_celery_task_options_with_no_meaning_are_noted():
    notes = {(n.id, n.obj): n.msg for n in check_task_options()}
    assert notes[("django_tasks.I034", flaky.name)] == (
        f"Task {flaky.name}: the Celery option(s) routing_key, throws are accepted and "
        "ignored (no meaning with the database as the broker).")
    assert ("django_tasks.I034", hello.name) not in notes
    # rate_limit is enforced by workers: only eager mode, which ignores it, is noted.
    assert ("django_tasks.I035", flaky.name) not in notes
    with override_settings(DJANGO_TASKS={"EAGER": True}):
        notes = {(n.id, n.obj): n.msg for n in check_task_options()}
    assert "rate_limit='10/m' does not apply while EAGER runs tasks inline" in \
        notes[("django_tasks.I035", flaky.name)]


# -- app.conf ----------------------------------------------------------------

def test_app_conf_reads_the_settings_under_celerys_names():
    conf = celery_app.conf
    assert conf.task_serializer == settings.SERIALIZER == "json"
    assert conf["task_default_queue"] == "default"
    assert conf.broker_url is None
    with override_settings(CELERY_BROKER_URL="redis://", CELERY_TASK_DEFAULT_QUEUE="q"):
        assert conf.broker_url == "redis://"
        assert conf.task_default_queue == "q"
        assert conf.get("broker_url") == "redis://"


def test_app_conf_writes_are_used_unless_django_tasks_sets_the_key():
    celery_app.conf.task_default_queue = "from-conf"
    celery_app.conf.update(task_routes={"testproject.tasks.mul": {"queue": "mul"}},
                           worker_concurrency=4)
    assert _queued(add.delay(1, 2)).queue == "from-conf"
    assert _queued(mul.delay(1, 2)).queue == "mul"
    assert celery_app.conf.worker_concurrency == 4
    with override_settings(DJANGO_TASKS={**settings_dict(), "DEFAULT_QUEUE": "ours"}):
        assert _queued(add.delay(1, 2)).queue == "ours"


def test_config_from_a_celeryconfig_module():
    config = types.ModuleType("celeryconfig")
    config.task_serializer = "pickle"
    config.accept_content = ["json", "pickle"]
    config.broker_url = "amqp://"
    Celery("proj").config_from_object(config)
    assert (settings.SERIALIZER, settings.ACCEPT_CONTENT) == ("pickle", ["json", "pickle"])
    prefixed = types.SimpleNamespace(CELERY_TASK_ALWAYS_EAGER=True, OTHER=1)
    Celery("proj").config_from_object(prefixed, namespace="CELERY")
    assert settings.EAGER is True
    with pytest.raises(ImportError):
        Celery("proj").config_from_object("no.such.module")
    Celery("proj").config_from_object("no.such.module", silent=True)


def test_periodic_tasks_added_from_on_after_configure_join_the_beat_schedule():
    app = Celery("periodic")
    calls = []

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender, **kwargs):
        calls.append(sender)
        sender.add_periodic_task(10.0, add.s(1, 2), name="add every 10")
        sender.add_periodic_task(timedelta(minutes=1), mul.s(2, 3).set(queue="beat"),
                                 expires=30, routing_key="ignored")

    assert calls == [app]  # Django's apps are ready: called at once
    assert settings.BEAT_SCHEDULE == {
        "add every 10": {"task": "testproject.tasks.add", "schedule": 10.0, "args": (1, 2),
                         "kwargs": {}, "options": {}},
        "testproject.tasks.mul(2, 3)": {"task": "testproject.tasks.mul",
                                         "schedule": timedelta(minutes=1), "args": (2, 3),
                                         "kwargs": {},
                                         "options": {"queue": "beat", "expires": 30}}}
    assert not check_settings()


def test_app_signals_wait_for_djangos_apps(monkeypatch):
    monkeypatch.setattr(app_module, "_configured", False)
    monkeypatch.setattr(app_module, "apps_made", [])
    app = Celery("early")
    calls = []
    app.on_after_finalize.connect(weak=False)(lambda sender, **kwargs: calls.append(sender))
    assert calls == []
    app_module.finish_configuring()
    assert calls == [app]


def test_a_worker_with_beat_runs_the_periodic_tasks_added_from_code(start_worker):
    start_worker("--beat", env={"TESTS_EXTRA_APPS": "tests.celerybeat"})
    done = wait_until(lambda: TaskResult.objects.filter(
        task_name="tests.celerybeat.celery.test", state=states.SUCCESS).first(),
        timeout=60, message="a periodic run")
    assert AsyncResult(str(done.task_id)).get(timeout=5) == "said hello"
