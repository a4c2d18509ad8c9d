"""The worker's log: a repeating failure is logged once, with a count."""

import logging

from django_tasks.worker.logs import RepeatFilter


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def _record(message, *args, error=None):
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord("django_tasks.worker", logging.ERROR, __file__, 1, message, args,
                             exc_info)


def test_the_same_error_is_counted_not_repeated():
    clock = Clock()
    repeats = RepeatFilter(window=60, clock=clock)
    passed = []
    for pid in range(1000):  # a child dying on start, 1,000 times
        record = _record("prefork child %s failed", pid, error=RuntimeError("boom"))
        if repeats.filter(record):
            passed.append(record)
        clock.now += 0.1
    # One at the start, then one a minute with the count of those held back.
    assert len(passed) == 2
    assert passed[1].getMessage() == ("prefork child 600 failed "
                                      "[599 more like this in the 60s before]")


def test_different_errors_and_messages_all_pass():
    repeats = RepeatFilter(window=60, clock=Clock())
    records = [_record("child %s failed", 1, error=RuntimeError("a")),
               _record("child %s failed", 1, error=RuntimeError("b")),
               _record("child %s failed", 1, error=ValueError("a")),
               _record("Task %s raised unexpected", "t1"),
               _record("Task %s raised unexpected", "t2")]
    assert all(repeats.filter(record) for record in records)
    assert not repeats.filter(_record("Task %s raised unexpected", "t2"))
