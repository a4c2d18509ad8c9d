"""Old import path of ``django_tasks.execution`` (running one message), which
moved out of the worker because eager mode and ``testing`` run messages too;
kept because code outside the package may import ``execute`` from here."""

from ..execution import execute, interrupted_outcome, run_eagerly, unrecordable_outcome

__all__ = ["execute", "interrupted_outcome", "run_eagerly", "unrecordable_outcome"]
