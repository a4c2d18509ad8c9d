"""A task module outside any installed app's tasks.py, found through Celery(include=[...])."""

from .celery import app


@app.task
def triple(x):
    return 3 * x
