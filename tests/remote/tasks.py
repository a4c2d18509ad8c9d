from django_tasks import task


@task
def multiply(x, y):
    return x * y
