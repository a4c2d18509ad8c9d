"""``ExceptionInfo``: an exception with its traceback, as Celery's ``einfo``.

What ``task_failure`` and ``task_retry`` receivers get as ``einfo`` (Celery's
is ``billiard.einfo.ExceptionInfo``): ``exception``, ``type``, ``tb`` (the
traceback object) and ``traceback`` (the formatted text); ``str(einfo)`` is
that text.
"""

import traceback as traceback_module


class ExceptionInfo:
    internal = False

    def __init__(self, exception, traceback=None):
        self.exception = exception
        self.type = type(exception)
        self.tb = exception.__traceback__
        # The text already made for the result row, where there is one.
        self._text = traceback

    @property
    def traceback(self):
        if self._text is None:
            self._text = "".join(traceback_module.format_exception(self.exception))
        return self._text

    @property
    def exc_info(self):
        return (self.type, self.exception, self.tb)

    def __str__(self):
        return self.traceback

    def __repr__(self):
        return f"<ExceptionInfo: {self.exception!r}>"
