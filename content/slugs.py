"""Unique slugs from titles, also for titles that slugify turns into nothing (Chinese, emoji)."""

from __future__ import annotations

import secrets
import string

from django.db import models
from django.utils.text import slugify

_ALPHABET = string.ascii_lowercase + string.digits
SHORT_ID_LENGTH = 8


def short_id(length: int = SHORT_ID_LENGTH) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def slug_unique(model: type[models.Model], text: str, *, max_length: int, field: str = "slug") -> str:
    """An ASCII slug of `text` not yet used by `model`: slugify(text), else a short random id; "-2", "-3"... on clashes.

    A race between two saves of the same title is caught by the unique constraint (the second save fails cleanly).
    """
    base = slugify(text)[: max_length - SHORT_ID_LENGTH - 1].strip("-")
    if not base:
        for _attempt in range(10):
            candidate = short_id()
            if not model._default_manager.filter(**{field: candidate}).exists():
                return candidate
        return short_id(16)
    taken = set(model._default_manager.filter(**{f"{field}__startswith": base}).values_list(field, flat=True)[:1000])
    if base not in taken:
        return base
    for n in range(2, 1000):
        candidate = f"{base}-{n}"
        if candidate not in taken:
            return candidate
    return f"{base}-{short_id()}"
