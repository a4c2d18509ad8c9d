"""Unique tasks: who holds each (task name, unique_key) (see unique.py)."""

import django.utils.timezone
import django_tasks.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks', '0013_rate_buckets'),
    ]

    operations = [
        migrations.CreateModel(
            name='UniqueLock',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('task_name', models.CharField(max_length=255)),
                ('key', models.CharField(max_length=255)),
                ('task_id', django_tasks.fields.TaskIdField(max_length=255)),
                ('unique_for', models.FloatField(default=0)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('held_until', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'unique lock',
                'constraints': [models.UniqueConstraint(fields=('task_name', 'key'), name='django_tasks_unique_key')],
            },
        ),
    ]
