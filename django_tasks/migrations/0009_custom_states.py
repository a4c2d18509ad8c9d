from django.db import migrations, models


class Migration(migrations.Migration):
    """Room for the custom states tasks report with ``update_state``."""

    dependencies = [
        ('django_tasks', '0008_expires_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='taskresult',
            name='state',
            field=models.CharField(choices=[('PENDING', 'Pending'), ('RECEIVED', 'Received'), ('STARTED', 'Started'), ('RETRY', 'Retry'), ('SUCCESS', 'Success'), ('FAILURE', 'Failure'), ('REVOKED', 'Revoked'), ('REJECTED', 'Rejected')], default='PENDING', max_length=50),
        ),
    ]
