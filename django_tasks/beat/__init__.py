"""Beat: periodic tasks sent exactly once per tick by any number of schedulers.

``schedules`` (crontab, intervals), ``models`` (PeriodicTask, PeriodicTick),
``validation`` (what the checks and the admin reject), ``sync`` (settings
schedules into the table), ``sending`` (one message per run), ``scheduler``
(one pass: claim due rows, send, advance), ``service`` (the loop, as a
thread inside ``runworker --beat`` or in ``runbeat``).
"""
