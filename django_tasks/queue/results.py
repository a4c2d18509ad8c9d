"""Results, saved groups and the admin's list helpers.

``Results`` is one of the topic mixins ``BaseQueue`` (base.py) is made of:
reads of one result or message by task id (``AsyncResult``), purges, and
the admin's row estimate and loose index scan (``distinct_values``, whose
statement is standard SQL both vendors run, through the connector).
"""

from django.db.models import Q

from ..messages import is_task_id
from ..models import QueuedMessage, TaskGroup, TaskResult


class Results:
    """Results and what the admin lists."""

    # Ids are any text; one no row can hold (NUL, too long) was never sent,
    # and is not looked up: PostgreSQL would refuse the NUL.

    def get_result(self, task_id):
        if not is_task_id(task_id):
            return None
        return TaskResult.objects.using(self.alias).filter(task_id=task_id).first()

    def get_message(self, task_id):
        if not is_task_id(task_id):
            return None
        return QueuedMessage.objects.using(self.alias).filter(task_id=task_id).first()

    def forget(self, task_id):
        if is_task_id(task_id):
            TaskResult.objects.using(self.alias).filter(task_id=task_id).delete()

    def purge_results(self, older_than, batch_size):
        """Delete results done before ``older_than``, ``batch_size`` rows a statement."""
        expired = TaskResult.objects.using(self.alias).filter(date_done__lt=older_than)
        return self._delete_in_batches(expired, "date_done", batch_size)

    def purge_groups(self, older_than, batch_size):
        """Delete saved groups and finished chords created before ``older_than``.

        A chord whose members are not all done keeps its row (its counter),
        however old: deleting it would leave its body never to run.
        """
        finished = (TaskGroup.objects.using(self.alias).filter(date_created__lt=older_than)
                    .filter(Q(remaining__isnull=True) | Q(remaining__lte=0)))
        return self._delete_in_batches(finished, "date_created", batch_size)

    def _delete_in_batches(self, rows, order_by, batch_size):
        """Delete ``rows`` oldest first, ``batch_size`` a statement (short locks)."""
        total = 0
        table = rows.model.objects.using(self.alias)
        while True:
            keys = list(rows.order_by(order_by).values_list("pk", flat=True)[:batch_size])
            if not keys:
                return total
            total += table.filter(pk__in=keys)._raw_delete(self.alias)

    # -- the admin's list pages ------------------------------------------

    def estimated_row_count(self, model):
        """The planner's row estimate for ``model``'s table, or None where the
        database keeps none (then the admin counts, capped)."""
        return None

    def distinct_values(self, model, column, limit, where="", params=(), descending=False):
        """Up to ``limit`` distinct non-null values of ``column``, in order
        (``descending``: highest first), among the rows matching ``where``
        (SQL with ``params``).

        A loose index scan (one index probe per value, standard SQL that both
        vendors run): the column must lead an index (or follow the columns
        ``where`` fixes), and then listing the task names of a million
        results reads a few dozen index entries instead of the whole table.
        """
        table = self.connection.ops.quote_name(model._meta.db_table)
        name = self.connection.ops.quote_name(column)
        first, beyond = ("MAX", "<") if descending else ("MIN", ">")
        only = f" WHERE {where}" if where else ""
        sql = (f"WITH RECURSIVE v(value) AS ("
               f" SELECT {first}({name}) FROM {table}{only}"
               f" UNION ALL"
               f" SELECT (SELECT {first}({name}) FROM {table}"
               f" WHERE {f'({where}) AND ' if where else ''}{name} {beyond} v.value)"
               f" FROM v WHERE v.value IS NOT NULL)"
               f" SELECT value FROM v WHERE value IS NOT NULL LIMIT %s")
        rows = self.connector.execute(sql, [*params, *params, limit], fetch=True)
        return [row[0] for row in rows]

