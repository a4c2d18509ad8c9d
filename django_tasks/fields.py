"""The model field of task and group ids."""

from django.db import models

from .messages import MAX_TASK_ID_LENGTH


class TaskIdField(models.CharField):
    """A task or group id: any text, as in Celery (``new_task_id()``'s
    UUIDv7 text by default), up to MAX_TASK_ID_LENGTH characters.

    On PostgreSQL the column is ``varchar`` in the "C" collation: its
    indexes compare bytes (memcmp) instead of calling the locale's strcoll,
    and UUIDv7 text sorts in time order whatever the database's locale, so
    new ids still land at the right edge of the indexes. It is spelt
    ``character varying`` so that Django does not add a second,
    ``varchar_pattern_ops`` index for LIKE look-ups to each indexed id
    column: nothing searches ids by pattern, and every insert would pay
    for it.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", MAX_TASK_ID_LENGTH)
        super().__init__(*args, **kwargs)

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return f"character varying({self.max_length})"
        return super().db_type(connection)

    def db_parameters(self, connection):
        parameters = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            parameters["collation"] = "C"
        return parameters
