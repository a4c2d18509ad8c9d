"""Task and group ids become text: any string, as in Celery.

Existing ids are kept as their canonical text (``str(UUID)``, what every
header, notification and ``AsyncResult.id`` already spelt them): PostgreSQL's
uuid-to-varchar conversion writes exactly that; databases without a native
uuid type (SQLite) kept 32 hex digits, which are given back their hyphens.
"""

from django.db import migrations
from django.db.models import F, Value
from django.db.models.functions import Concat, Length, Substr

import django_tasks.fields

# (model, id columns) whose values were UUIDField values.
ID_COLUMNS = (
    ("QueuedMessage", ("task_id",)),
    ("TaskResult", ("task_id", "parent_id", "root_id", "group_id")),
    ("TaskGroup", ("group_id",)),
    ("PeriodicTick", ("task_id",)),
)


def _hyphenated(column):
    """``column``'s 32 hex digits as 8-4-4-4-12."""
    parts = [Substr(F(column), start, length)
             for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))]
    joined = [parts[0]]
    for part in parts[1:]:
        joined += [Value("-"), part]
    return Concat(*joined)


def canonical_text(apps, schema_editor):
    connection = schema_editor.connection
    if connection.features.has_native_uuid_field:
        return  # converted by the column's type change itself
    alias = connection.alias
    for model_name, columns in ID_COLUMNS:
        model = apps.get_model("django_tasks", model_name)
        for column in columns:
            # The primary key too: nothing refers to these rows by foreign key.
            (model.objects.using(alias)
             .annotate(id_length=Length(column)).filter(id_length=32)
             .update(**{column: _hyphenated(column)}))


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks', '0010_acked_at'),
    ]

    operations = [
        migrations.AlterField(
            model_name='queuedmessage',
            name='task_id',
            field=django_tasks.fields.TaskIdField(max_length=255, unique=True),
        ),
        migrations.AlterField(
            model_name='taskresult',
            name='task_id',
            field=django_tasks.fields.TaskIdField(max_length=255, primary_key=True,
                                                  serialize=False),
        ),
        migrations.AlterField(
            model_name='taskresult',
            name='parent_id',
            field=django_tasks.fields.TaskIdField(blank=True, max_length=255, null=True),
        ),
        migrations.AlterField(
            model_name='taskresult',
            name='root_id',
            field=django_tasks.fields.TaskIdField(blank=True, max_length=255, null=True),
        ),
        migrations.AlterField(
            model_name='taskresult',
            name='group_id',
            field=django_tasks.fields.TaskIdField(blank=True, max_length=255, null=True),
        ),
        migrations.AlterField(
            model_name='taskgroup',
            name='group_id',
            field=django_tasks.fields.TaskIdField(max_length=255, primary_key=True,
                                                  serialize=False),
        ),
        migrations.AlterField(
            model_name='periodictick',
            name='task_id',
            field=django_tasks.fields.TaskIdField(max_length=255),
        ),
        migrations.RunPython(canonical_text, migrations.RunPython.noop),
    ]
