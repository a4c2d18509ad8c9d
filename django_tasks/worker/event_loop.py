"""Old import path of ``django_tasks.event_loop`` (the event loop async tasks
share), which moved out of the worker because eager mode runs async tasks on
it too; kept for code that imports it from here."""

from ..event_loop import _as_cancellation, run

__all__ = ["_as_cancellation", "run"]
