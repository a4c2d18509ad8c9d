from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_tasks', '0008_expires_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='queuedmessage',
            name='acked_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
