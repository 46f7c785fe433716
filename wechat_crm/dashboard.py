"""The admin's index page: the operators' day at a glance (django-unfold's DASHBOARD_CALLBACK).

Thin: every figure comes from a selector (accounts, conversations, content, campaigns); this module only shapes
them for the template and for the charts that unfold's bundled Chart.js draws from our own static files."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import followers_today
from campaigns.funnel import funnel_query, funnel_report
from content.selectors import last_push_quality, pushes_in_flight
from conversations.selectors import inbox_summary
from wechat_crm.permissions import user_can_read

PRIMARY = "var(--color-primary-600)"
MUTED = "var(--color-base-300)"


def _chart(labels: list[str], datasets: list[dict[str, Any]]) -> str:
    # unfold draws hairline bars (4 px) by default: ours are read at a glance.
    datasets = [{"maxBarThickness": 36, "borderRadius": 4, **d} for d in datasets]
    return json.dumps({"labels": labels, "datasets": datasets}, ensure_ascii=False)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return _("%(days)d d %(hours)d h") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    return _("%(minutes)d min") % {"minutes": minutes}


def dashboard_data(*, now=None) -> dict[str, Any]:
    """Everything the dashboard shows, as plain values (also what its tests read)."""
    now = now or timezone.now()
    followers = followers_today(now=now)
    inbox = inbox_summary(now=now)
    today = timezone.localdate(now)
    funnel = funnel_report(query=funnel_query(start=today - timedelta(days=29), end=today, window_days=30))
    return {
        "followers": followers,
        "inbox": inbox,
        "pushes": pushes_in_flight(),
        "last_push": last_push_quality(),
        "funnel": funnel,
    }


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    if not user_can_read(request.user):
        return context
    data = dashboard_data()
    f = data["followers"]
    keys = [("new", _("New followers")), ("lost", _("Lost followers")), ("net", _("Net"))]
    followers_chart = _chart(
        [label for _key, label in keys],
        [
            {
                "label": _("Today (%(day)s)") % {"day": f["day"].isoformat()},
                "data": [f["today"][k] for k, _label in keys],
                "backgroundColor": PRIMARY,
            },
            {
                "label": _("Same day last week (%(day)s)") % {"day": f["last_week_day"].isoformat()},
                "data": [f["last_week"][k] for k, _label in keys],
                "backgroundColor": MUTED,
            },
        ],
    )
    steps = data["funnel"]["steps"]
    funnel_chart = _chart(
        [s["label"] for s in steps],
        [{"label": _("Subscribers"), "data": [s["count"] for s in steps], "backgroundColor": PRIMARY}],
    )
    oldest = data["inbox"]["oldest"]
    if oldest:
        oldest = {
            **oldest,
            "waiting": _duration(oldest["waiting_seconds"]),
            "url": reverse("admin:conversations_thread", args=[oldest["conversation"]]),
        }
    pushes = [
        {**p, "url": reverse("admin:content_push_change", args=[p["id"]]),
         "progress_url": reverse("admin:content_push_progress", args=[p["id"]])}
        for p in data["pushes"]
    ]  # fmt: skip
    last_push = data["last_push"]
    if last_push:
        last_push = {**last_push, "url": reverse("admin:content_push_change", args=[last_push["id"]])}
    context.update(
        {
            "dashboard": True,
            "followers": f,
            "followers_rows": [
                (label, f["today"][k], f["last_week"][k], f["today"][k] - f["last_week"][k]) for k, label in keys
            ],
            "followers_chart": followers_chart,
            "inbox": {**data["inbox"], "oldest": oldest},
            "inbox_url": reverse("admin:conversations_conversation_changelist"),
            "pushes": pushes,
            "last_push": last_push,
            "funnel": data["funnel"],
            "funnel_chart": funnel_chart,
            "funnel_url": reverse("admin:campaigns_funnelreport_changelist"),
        }
    )
    return context
