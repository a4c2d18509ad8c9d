"""A paginator for tables of millions of rows: no full COUNT(*) per page view.

Unfiltered lists take the database's row estimate (``pg_class.reltuples`` on
PostgreSQL, via the queue backend); filtered ones, or where there is no
estimate, count at most ``CAP`` rows (``COUNT(*)`` over a ``LIMIT``, which
stops early). Pages stop at ``MAX_PAGES``: an ``OFFSET`` of a million rows
reads a million rows, so deeper than that, filter (by date, state, name).
"""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

from ..queue import get_backend

CAP = 10_000
MAX_PAGES = 100


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where:
            estimate = get_backend().estimated_row_count(queryset.model)
            if estimate is not None and estimate > CAP:
                return estimate
        # Unordered: any CAP matching rows will do, so no sort to count them.
        return queryset.order_by()[:CAP].count()

    @cached_property
    def num_pages(self):
        return min(super().num_pages, MAX_PAGES)
