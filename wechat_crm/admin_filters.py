"""Admin list filters that read what an operator types the way the operator means it.

unfold's RangeDateTimeFilter (0.91) parses the date and time it is given into a naive datetime: Django then reads
it in the server's time zone and warns, and a range with a date but no time is silently dropped. Operators pick a
day more often than a minute. `RangeDateTimeFilter` here reads both in the operator's time zone (Asia/Shanghai by
default), takes a date alone as the start of that day (from) or its end (to), and tells the operator when a value
cannot be read instead of showing the unfiltered list as if it were filtered.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_time
from django.utils.translation import gettext as _
from unfold.contrib.filters.admin import RangeDateTimeFilter as UnfoldRangeDateTimeFilter


def _local(date_text: str | None, time_text: str | None, *, end_of_day: bool) -> dt.datetime | None:
    """The moment an operator means by a date and an optional time, in the active time zone. Raises ValueError
    when a value given cannot be read."""
    if not date_text:
        if time_text:
            raise ValueError(time_text)
        return None
    day = parse_date(date_text.strip())
    if day is None:
        raise ValueError(date_text)
    if time_text:
        at = parse_time(time_text.strip())
        if at is None:
            raise ValueError(time_text)
    else:
        at = dt.time.max if end_of_day else dt.time.min
    return timezone.make_aware(dt.datetime.combine(day, at), timezone.get_current_timezone())


class RangeDateTimeFilter(UnfoldRangeDateTimeFilter):
    """unfold's date-and-time range, in the operator's time zone, a date alone meaning the whole day."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        name = self.parameter_name
        bounds = (("from", "gte", False), ("to", "lte", True))
        for side, lookup, end_of_day in bounds:
            date_text = self.used_parameters.get(f"{name}_{side}_0")
            time_text = self.used_parameters.get(f"{name}_{side}_1")
            try:
                moment = _local(date_text, time_text, end_of_day=end_of_day)
            except (ValueError, ValidationError) as error:  # the other bound, when readable, still applies
                messages.error(
                    request,
                    _("%(field)s: “%(value)s” is not a date or time this filter can read; not filtered by it.")
                    % {"field": self.title, "value": error.args[0] if error.args else ""},
                )
                continue
            if moment is not None:
                queryset = queryset.filter(**{f"{name}__{lookup}": moment})
        return queryset
