import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks', '0014_unique_locks'),
    ]

    operations = [
        migrations.CreateModel(
            name='RateOverride',
            fields=[
                ('task_name', models.CharField(max_length=255, primary_key=True, serialize=False)),
                ('rate_limit', models.JSONField()),
                ('set_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'verbose_name': 'rate limit override',
            },
        ),
    ]
