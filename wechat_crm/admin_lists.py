"""Admin change lists at scale: what django-unfold computes once per row that is the same for every row.

unfold's `items_for_result` (unfold/templatetags/unfold_list.py, 0.91) recomputes the whole list's column headers for
each row it renders, only to read each column's label: 100 rows x 10 columns rebuilt a thousand headers, each with
its sort URLs, a third of a subscriber page's time (bench/admin.py). `headers_once` keeps the headers on the change
list the first time they are built; the headers of one change list never change while it renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

_ATTRIBUTE = "_wechat_crm_result_headers"


def _memoized(result_headers: Callable[[Any], Iterator[dict]]) -> Callable[[Any], Iterator[dict]]:
    def headers(cl: Any) -> Iterator[dict]:
        built = getattr(cl, _ATTRIBUTE, None)
        if built is None:
            built = list(result_headers(cl))
            setattr(cl, _ATTRIBUTE, built)
        return iter(built)

    headers.wrapped = result_headers  # type: ignore[attr-defined]
    return headers


def headers_once() -> None:
    """Replace unfold's result_headers with one that builds a change list's headers once (idempotent)."""
    from unfold.templatetags import unfold_list

    if not hasattr(unfold_list.result_headers, "wrapped"):
        unfold_list.result_headers = _memoized(unfold_list.result_headers)


_CHECKBOXES: dict[str | None, tuple[str, str]] = {}  # by language: the HTML before and after the pk


class QuickCheckboxMixin:
    """The action checkbox of each row rendered by substituting the row's pk into one rendering of unfold's
    checkbox (the same HTML), instead of rendering the widget's three templates again for every row."""

    @staticmethod
    def _checkbox_html() -> tuple[str, str]:
        from django.contrib.admin import helpers
        from unfold.admin import checkbox

        marker = "__wechat_crm_pk__"
        html = str(checkbox.render(helpers.ACTION_CHECKBOX_NAME, marker))
        before, _marker, after = html.partition(marker)
        return before, after

    def action_checkbox(self, obj: Any) -> str:
        from django.utils.html import escape
        from django.utils.safestring import mark_safe
        from django.utils.translation import get_language

        language = get_language()  # the box's label is translated
        parts = _CHECKBOXES.get(language)
        if parts is None:
            parts = _CHECKBOXES[language] = self._checkbox_html()
        return mark_safe(parts[0] + escape(str(obj.pk)) + parts[1])  # noqa: S308 - our own widget's HTML and the pk

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from unfold.admin import ModelAdmin

        # The column header (the "select all" box) as unfold declares it.
        cls.action_checkbox.short_description = ModelAdmin.action_checkbox.short_description  # type: ignore[attr-defined]
