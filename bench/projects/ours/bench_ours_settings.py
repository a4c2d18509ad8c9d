"""Settings of the bench's django_tasks project: the demo project's, plus the bench app."""

from testproject.settings import *  # noqa: F401,F403
from testproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench_ours"]
DEBUG = False
