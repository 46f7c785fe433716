"""A journey's report: entered, each step's runs (done / skipped and why), finished and converted."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from django.utils.translation import gettext as _

from wechat_crm.db import reads_reports

from ..models import Journey, JourneyEnrollment, JourneyStep, JourneyStepRun

E = JourneyEnrollment.Status


@reads_reports
def journey_report(journey: Journey) -> dict[str, Any]:
    """Entered, completed each step (done / skipped), finished and converted."""
    enrollments = JourneyEnrollment.objects.filter(journey=journey)
    counts = enrollments.aggregate(
        entered=Count("pk"),
        completed=Count("pk", filter=Q(status=E.COMPLETED)),
        stopped=Count("pk", filter=Q(status=E.STOPPED)),
        active=Count("pk", filter=Q(status=E.ACTIVE)),
        converted=Count("pk", filter=Q(converted_at__isnull=False)),
    )
    runs = {
        (row["step_id"], row["outcome"]): row["n"]
        for row in JourneyStepRun.objects.filter(enrollment__journey=journey)
        .values("step_id", "outcome")
        .annotate(n=Count("pk"))
    }
    # Why steps were skipped: the send policy's reason code (conversations.policy.Reason), or the condition.
    reasons: dict[int, dict[str, int]] = {}
    for row in (
        JourneyStepRun.objects.filter(enrollment__journey=journey, outcome=JourneyStepRun.Outcome.SKIPPED)
        .values("step_id", "detail")
        .annotate(n=Count("pk"))
    ):
        code = row["detail"].partition(":")[0] or "condition"
        reasons.setdefault(row["step_id"], {})[code] = reasons.get(row["step_id"], {}).get(code, 0) + row["n"]
    steps = [
        {"position": s.position, "step": str(s), "done": runs.get((s.pk, "done"), 0),
         "skipped": runs.get((s.pk, "skipped"), 0) + runs.get((s.pk, "stopped"), 0),
         "skip_reasons": reasons.get(s.pk, {})}
        for s in JourneyStep.objects.filter(journey_id=journey.pk).order_by("position", "id")
    ]  # fmt: skip
    return {**counts, "steps": steps, "label": _("Journey report")}
