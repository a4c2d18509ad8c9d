"""Demo tasks, as in the Celery tutorials."""

import time

from django_tasks import task


@task
def add(x, y):
    return x + y


@task
def mul(x, y):
    return x * y


@task
def xsum(numbers):
    return sum(numbers)


@task
def sendmail(mail):
    print(f"sending mail to {mail['to']}...")
    time.sleep(2.0)
    print("mail sent.")
    return "Send Successful!"
