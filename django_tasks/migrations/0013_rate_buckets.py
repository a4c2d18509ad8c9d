from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks', '0012_concurrency_limits'),
    ]

    operations = [
        migrations.CreateModel(
            name='RateBucket',
            fields=[
                ('task_name', models.CharField(max_length=255, primary_key=True, serialize=False)),
                ('tat', models.DateTimeField()),
                ('horizon', models.DateTimeField()),
            ],
        ),
    ]
