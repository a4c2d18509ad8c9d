from django_tasks import Celery  # was: from celery import Celery

app = Celery("celerybeat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def setup_periodic_tasks(sender, **kwargs):
    sender.add_periodic_task(1.0, test.s("hello"), name="say hello every second")


@app.task
def test(arg):
    return f"said {arg}"
