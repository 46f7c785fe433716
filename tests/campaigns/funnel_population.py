"""A funnel population built by hand, and every report computed on it, as plain JSON.

Importable without pytest: tests/campaigns/test_funnel.py builds `population_small()` on PostgreSQL, and
tests/campaigns/test_funnel_sqlite_parity.py builds `population_full()` on PostgreSQL and, in a subprocess, on the
embedded default (SQLite), then compares `reports()` number by number.

The small population (times in Asia/Shanghai):
a1  channel A  follows Mon 2 Mar 10:00, clicks push P's link to X (+1 h), texts (+1 d, +2 d): interactive at +2 d,
               purchases 100.00 at +3 d                                  -> converted within the window
a2  channel A  follows +1 h, clicks a link to Y (no push) +1 h later     -> engaged
a3  channel A  follows +1 d                                              -> followed
n1  no channel follows +2 d                                              -> followed
b1  channel B  follows +7 d, menu click +1 h, texts +1 d and +1 d 1 h: interactive; purchases 50.00 at +50 d
               (43 days after the follow: outside a 30-day window, inside a 60-day one)
b2  channel B  follows +8 d, clicks P's link to X (+1 h), registers at +9 d (converted, never interactive)

The full population adds 240 subscribers with seeded random stage times (to the microsecond; some stages reached
before the previous one, some outside the window, some following before or after the report's range), over channels
A, B and C, contents X and Y and the tags vip and trial.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=SH)
H = timedelta(hours=1)
D = timedelta(days=1)
START, END = date(2026, 3, 1), date(2026, 3, 31)
_seq = count(1)


def interaction(sub, kind: str, at: datetime, **data) -> None:
    """Store an interaction and run the stage follow-ups Celery would run for it."""
    from accounts.models import Interaction
    from campaigns import events

    row = Interaction.objects.create(
        subscriber=sub, kind=kind, dedupe_key=f"t:{next(_seq)}", raw_xml="", created_at=at, received_at=at, data=data
    )
    row = Interaction.objects.select_related("subscriber").get(pk=row.pk)
    if kind == "subscribe":
        events.stage_follow([row])
    else:
        events.stage_advance([row])


def follow(openid: str, channel, at: datetime):
    from accounts.models import Subscriber

    sub = Subscriber.objects.create(openid=openid, is_following=True, subscribed_at=at, source_channel=channel)
    interaction(sub, "subscribe", at)
    return sub


def population_small() -> dict[str, Any]:
    from accounts.models import Tag
    from campaigns.conversions import ConversionInput, conversions_record
    from campaigns.models import Campaign, Channel
    from content.models import Article, Push

    a = Channel.objects.create(name="Poster A", scene_str="poster-a")
    b = Channel.objects.create(name="Poster B", scene_str="poster-b")
    x = Article.objects.create(title="Article X", slug="article-x")
    y = Article.objects.create(title="Article Y", slug="article-y")
    p = Push.objects.create(name="Push P", article=x)
    a1 = follow("o_a1", a, T0)
    interaction(a1, "link_click", T0 + H, push_id=p.pk, content_id=x.pk, engaged=True)
    interaction(a1, "text", T0 + D)
    interaction(a1, "text", T0 + 2 * D)
    a2 = follow("o_a2", a, T0 + H)
    interaction(a2, "link_click", T0 + 2 * H, push_id=None, content_id=y.pk, engaged=True)
    follow("o_a3", a, T0 + D)
    follow("o_n1", None, T0 + 2 * D)
    b1 = follow("o_b1", b, T0 + 7 * D)
    interaction(b1, "click", T0 + 7 * D + H)
    interaction(b1, "text", T0 + 8 * D)
    interaction(b1, "text", T0 + 8 * D + H)
    b2 = follow("o_b2", b, T0 + 8 * D)
    interaction(b2, "link_click", T0 + 8 * D + H, push_id=p.pk, content_id=x.pk, engaged=True)
    result = conversions_record(
        items=[
            ConversionInput(0, "purchase", "order-a1", T0 + 3 * D, openid="o_a1", value=Decimal("100.00")),
            ConversionInput(1, "purchase", "order-b1", T0 + 50 * D, openid="o_b1", value=Decimal("50.00")),
            ConversionInput(2, "register", "reg-b2", T0 + 9 * D, openid="o_b2"),
        ]
    )
    assert result.created == 3 and not result.errors, result
    vip = Tag.objects.create(name="vip")
    a1.tags.add(vip)
    b1.tags.add(vip)
    c1 = Campaign.objects.create(name="Spring A")
    c1.channels.set([a])
    c2 = Campaign.objects.create(name="Spring A+B")
    c2.channels.set([a, b])
    c2.pushes.set([p])
    return {"a": a, "b": b, "x": x, "y": y, "p": p, "c1": c1, "c2": c2}


def population_full() -> dict[str, Any]:
    """The small population and 240 seeded random subscribers (identical on every database)."""
    from accounts.models import Subscriber, Tag
    from campaigns.models import Campaign, Channel
    from campaigns.summary import summary_rebuild
    from content.models import Article

    objects = population_small()
    c = Channel.objects.create(name="Poster C", scene_str="poster-c")
    c3 = Campaign.objects.create(name="Autumn C")
    c3.channels.set([c])
    trial = Tag.objects.create(name="trial")
    vip = Tag.objects.get(name="vip")
    channels = [objects["a"], objects["b"], c, None]
    contents = [objects["x"], objects["y"], None]
    rng = random.Random(16)
    start = datetime(2026, 2, 25, tzinfo=SH)  # some follow before the report's range, some after it

    def later(at: datetime | None, days: float) -> datetime | None:
        if at is None or rng.random() < 0.3:
            return None
        # Mostly after `at`, sometimes before it (a stage reached before the previous one counts as a zero delay).
        return at + timedelta(microseconds=rng.randint(-2 * 3600 * 10**6, int(days * 86400 * 10**6)))

    for i in range(240):
        followed = start + timedelta(microseconds=rng.randint(0, 40 * 86400 * 10**6))
        engaged = later(followed, 10)
        interactive = later(engaged, 20)
        converted = later(interactive, 40)
        sub = Subscriber.objects.create(
            openid=f"o_rand_{i:03d}",
            is_following=rng.random() < 0.8,
            subscribed_at=followed,
            followed_at=followed,
            engaged_at=engaged,
            interactive_at=interactive,
            converted_at=converted,
            source_channel=rng.choice(channels),
            engaged_content=rng.choice(contents) if engaged else None,
            stage="converted" if converted else "interactive" if interactive else "engaged" if engaged else "followed",
        )
        if rng.random() < 0.25:
            sub.tags.add(vip)
        if rng.random() < 0.25:
            sub.tags.add(trial)
    assert Article.objects.count() == 2
    # Their stage columns were written here, not by the stage maintenance: the summary is rebuilt from them, as after
    # a bulk import (manage.py funnel_summary --rebuild).
    summary_rebuild()
    objects.update(c=c, c3=c3)
    return objects


# --- Every report, as JSON with names instead of ids (ids differ between databases) --------------------------------


def _money(value: Decimal | None) -> str:
    """Amounts as the API writes them (two decimals): SQLite's sums come back without trailing zeros."""
    return str(Decimal(value or 0).quantize(Decimal("0.01")))


def _named(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": report["steps"],
        "groups": [{"label": g["label"], "steps": g["steps"]} for g in report["groups"]],
    }


def reports() -> dict[str, Any]:
    """Each funnel report (overall, every breakdown, every filter, two windows; campaigns overlapping and not),
    the drop-off lists, the attribution tables and the campaign summaries, in English."""
    from django.utils import translation

    from campaigns import attribution_reports, funnel
    from campaigns.models import Campaign, Channel

    channel_ids = dict(Channel.objects.values_list("name", "pk"))
    campaign_ids = dict(Campaign.objects.values_list("name", "pk"))
    out: dict[str, Any] = {}
    with translation.override("en"):

        def run(key: str, **kwargs: Any) -> None:
            for window in (30, 60):
                query = funnel.funnel_query(start=START, end=END, window_days=window, **kwargs)
                out[f"{key}|window={window}"] = _named(funnel.funnel_report(query=query))

        def all_breakdowns(prefix: str) -> None:
            for breakdown in (None, *funnel.BREAKDOWNS):
                run(f"{prefix}breakdown={breakdown}", breakdown=breakdown)

        all_breakdowns("")
        for name, pk in sorted(channel_ids.items()):
            run(f"channel={name}", channel_id=pk, breakdown="content")
        for name, pk in sorted(campaign_ids.items()):
            run(f"campaign={name}", campaign_id=pk, breakdown="cohort_week")
        for tag in ("vip", "trial", "nobody"):
            run(f"tag={tag}", tag=tag, breakdown="channel")
        # The campaign breakdown without a channel in two campaigns (PostgreSQL's single-pass path).
        Campaign.objects.get(name="Spring A").channels.clear()
        run("partitioned campaigns", breakdown="campaign")
        Campaign.objects.get(name="Spring A").channels.set([channel_ids["Poster A"]])

        query = funnel.funnel_query(start=START, end=END, window_days=30)
        for step in funnel.ORDER[:-1]:
            out[f"dropoffs|{step}"] = list(
                funnel.funnel_dropoffs(query=query, step=step).values_list("openid", flat=True)
            )
        for by in ("channel", "campaign", "content"):
            out[f"attribution|{by}"] = [
                {**{k: v for k, v in row.items() if k != "key"}, "revenue": _money(row["revenue"])}
                for row in attribution_reports.attribution_report(query=query, by=by)
            ]
        for campaign in Campaign.objects.order_by("name"):
            summary = attribution_reports.campaign_summary(campaign=campaign)
            out[f"summary|{campaign.name}"] = {**summary, "revenue": _money(summary["revenue"])}
    return out
