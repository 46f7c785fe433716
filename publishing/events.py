"""What publishing does on WeChat's events (follow-ups, run in Celery after the callback stored the event)."""

from __future__ import annotations

from typing import Any


def publish_job_finish(interaction: Any) -> None:
    """PUBLISHJOBFINISH: the publication's result (article_id and permanent URLs, or its failure)."""
    from .services.publish import publish_job_finish as apply

    apply(interaction)
