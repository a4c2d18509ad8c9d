from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks', '0009_custom_states'),
    ]

    operations = [
        migrations.AddField(
            model_name='queuedmessage',
            name='acked_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
