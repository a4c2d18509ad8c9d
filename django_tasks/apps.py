from django.apps import AppConfig


class DjangoTasksConfig(AppConfig):
    name = "django_tasks"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        from . import checks, delivery_checks  # noqa: F401  (register the system checks)
        from .queue.base import FINISH_HOOKS
        from .replacing import write_replacements
        from .unique import record_finishes
        from .workflow import advance_workflows

        if write_replacements not in FINISH_HOOKS:
            FINISH_HOOKS.append(write_replacements)
        if advance_workflows not in FINISH_HOOKS:
            FINISH_HOOKS.append(advance_workflows)
        if record_finishes not in FINISH_HOOKS:
            FINISH_HOOKS.append(record_finishes)

        autodiscover_modules("tasks")
        from .app import finish_configuring

        finish_configuring()  # a Celery app's on_after_configure receivers
