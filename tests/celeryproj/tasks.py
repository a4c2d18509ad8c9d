from django_tasks import shared_task  # was: from celery import shared_task

from .celery import app


@app.task
def hello(name):
    return f"hello {name}"


@app.task(bind=True, max_retries=2, default_retry_delay=0, throws=(KeyError,),
          routing_key="reports", rate_limit="10/m")
def flaky(self, attempts_before_success):
    if self.request.retries < attempts_before_success:
        raise self.retry(countdown=0)
    return self.request.retries


@shared_task
def total(numbers):
    return sum(numbers)


@shared_task(bind=True, autoretry_for=(LookupError,), dont_autoretry_for=(KeyError,),
             retry_kwargs={"max_retries": 1, "countdown": 0})
def always_fails(self, kind):
    if kind == "key":
        raise KeyError("not retried")
    raise IndexError(f"attempt {self.request.retries}")
