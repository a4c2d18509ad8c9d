from django.apps import AppConfig


class TestsConfig(AppConfig):
    name = "tests"
    label = "tests"

    def ready(self):
        # Where a project registers its own serializers: every process that
        # loads the apps (web, workers) then has them.
        from .serializers import register_all

        register_all()
