"""A wrong DJANGO_TASKS setting fails at start-up with a message saying what to change."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import override_settings

from django_tasks.checks import check_settings
from tests.workers import ROOT, worker_env


def _ids(setting):
    with override_settings(DJANGO_TASKS=setting):
        return {error.id: error.msg for error in check_settings()}


def test_valid_settings_pass():
    assert _ids({"RESULT_EXPIRES": timedelta(hours=2), "TASK_ROUTES": {"a.*": {"queue": "a"}},
                 "POLL_INTERVAL": 0.5, "MAX_MESSAGE_SIZE": 1,
                 "MAX_RESULT_SIZE": 256 * 1024 * 1024}) == {}


@pytest.mark.parametrize("setting, error_id, words", [
    ({"RESULT_EXPIRE": 1}, "django_tasks.E002", "Unknown DJANGO_TASKS keys: RESULT_EXPIRE"),
    ({"DATABASE": "nope"}, "django_tasks.E003", "'nope', which is not in DATABASES"),
    ({"RESULT_EXPIRES": 3600}, "django_tasks.E005", "positive timedelta or None"),
    ({"TASK_ROUTES": {"a.*": {"queue": ""}}}, "django_tasks.E006", "non-empty string"),
    ({"TASK_ROUTES": {"a.*": {"q": "x"}}}, "django_tasks.E006", "unknown options ['q']"),
    ({"SERIALIZER": "yaml"}, "django_tasks.E007", "'yaml'"),
    ({"SERIALIZER": "pickle"}, "django_tasks.E008", "ACCEPT_CONTENT does not list it"),
    ({"ACCEPT_CONTENT": ["json", "yaml"]}, "django_tasks.E008", "unknown serializers"),
    ({"ACCEPT_CONTENT": ["application/json", "text/yaml"]}, "django_tasks.E008",
     "unknown serializers ['text/yaml']"),
    ({"EAGER": "yes"}, "django_tasks.E009", "True or False"),
    ({"POLL_INTERVAL": 0}, "django_tasks.E014", "positive number of seconds"),
    ({"HEARTBEAT_INTERVAL": 10, "WORKER_LOST_TIMEOUT": 15}, "django_tasks.E015", "twice"),
    ({"PREPARED_STATEMENTS": "off"}, "django_tasks.E018", "'PREPARED_STATEMENTS'] must be True"),
    ({"MAX_MESSAGE_SIZE": None}, "django_tasks.E020", "'MAX_MESSAGE_SIZE'] must be a whole"),
    ({"MAX_MESSAGE_SIZE": 0}, "django_tasks.E020", "from 1 to 268435456"),
    ({"MAX_RESULT_SIZE": 2**30}, "django_tasks.E020", "'MAX_RESULT_SIZE'] must be a whole"),
    ({"MAX_RESULT_SIZE": 1.5e6}, "django_tasks.E020", "'MAX_RESULT_SIZE'] must be a whole"),
])
def test_invalid_settings_are_reported(setting, error_id, words):
    errors = _ids(setting)
    assert error_id in errors, errors
    assert words in errors[error_id]


def test_runworker_refuses_to_start_with_bad_settings(tmp_path):
    settings_module = tmp_path / "bad_settings.py"
    settings_module.write_text("from tests.settings import *\n"
                               "DJANGO_TASKS = {'SERIALIZER': 'yaml'}\n")
    env = worker_env({"DJANGO_SETTINGS_MODULE": "bad_settings",
                      "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    done = subprocess.run([sys.executable, "manage.py", "runworker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "django_tasks.E007" in done.stderr
