"""What publishing does on WeChat's events (follow-ups, run in Celery after the callback stored the event)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def publish_job_finish(interactions: Sequence[Any]) -> None:
    """PUBLISHJOBFINISH: the publication's result (article_id and permanent URLs, or its failure)."""
    from .services.publish import publish_job_finish as apply

    for interaction in interactions:
        apply(interaction)
