"""A logging handler of the project's own (tests/settings.py LOGGING), as an
error tracker's would be: one JSON line per record, with the exception it
carries in ``exc_info``."""

import json
import logging
import os


class JsonLinesHandler(logging.Handler):
    def __init__(self, filename):
        super().__init__()
        self.filename = filename

    def emit(self, record):
        error = record.exc_info[1] if record.exc_info else None
        line = json.dumps({
            "name": record.name, "level": record.levelname, "message": record.getMessage(),
            "exc_type": type(error).__name__ if error is not None else None,
            "has_traceback": bool(error is not None and error.__traceback__ is not None),
            "task_id": getattr(record, "task_id", None),
            "task_name": getattr(record, "task_name", None), "pid": os.getpid(),
        }) + "\n"
        # One write per line, appending: lines of several processes stay whole.
        descriptor = os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)


def read(path):
    try:
        with open(path) as lines:
            return [json.loads(line) for line in lines]
    except FileNotFoundError:
        return []
