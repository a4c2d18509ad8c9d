from django.apps import AppConfig


class TestsConfig(AppConfig):
    name = "tests"
    label = "tests"

    def ready(self):
        # Where a project registers its own serializers: every process that
        # loads the apps (web, workers) then has them.
        from .serializers import register_all

        register_all()

        import django

        if django.VERSION >= (6, 0):
            # Tasks of Django's own API (django.tasks, new in 6.0), which the
            # worker finds as it finds @task ones: their module is imported.
            from . import django6_tasks  # noqa: F401
