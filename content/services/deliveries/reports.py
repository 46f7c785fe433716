"""WeChat's reports on what we sent: TEMPLATESENDJOBFINISH (each template message delivered or failed),
subscribe_msg_sent_event (each subscription notice delivered or failed) and MASSSENDJOBFINISH (a mass send's
totals), matched by WeChat's msgid."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from accounts.kinds import InteractionKind
from wechat_crm.lookups import AnyOf
from wechat_crm.wechat.inbound import notice_items

from ...models import Delivery, MassBatch
from . import tallies
from .rows import D

JOB_FINISH_ATTEMPTS = 8
NOTICE_SENT = InteractionKind.SUBSCRIBE_MSG_SENT_EVENT.value
REPORT_KINDS = (InteractionKind.TEMPLATESENDJOBFINISH.value, NOTICE_SENT)
EARLY_REPORT_MARGIN = dt.timedelta(hours=1)  # how far before a row's claim a report of it is looked for


class JobFinish(NamedTuple):
    """What a template report changed: rows updated, and whether its msgid is known at all (when not, the page that
    sent the message may not have written it yet)."""

    updated: int
    matched: bool


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def delivery_job_finish(interaction: Any) -> int:
    """One TEMPLATESENDJOBFINISH report (see deliveries_job_finish)."""
    return deliveries_job_finish([interaction])


def deliveries_job_finish(interactions: Sequence[Any]) -> int:
    """TEMPLATESENDJOBFINISH reports: success -> delivered; "failed:user block" / "failed: system failed" -> failed.

    Matched by msgid: one query for the msgids known at all, then one UPDATE for the batch. WeChat may report before
    the page that sent the message has written its msgid: the page applies the reports stored by then when it writes
    the msgids (deliveries_early_reports_apply), and the report is tried again a few seconds later (for about 5
    minutes) by content.tasks.delivery_job_finish_later, for a page that died between the two. Returns the rows
    updated.

    The known msgids are read BEFORE the update: a msgid committed between the two statements (each sees what was
    committed when it starts) would otherwise be known, but not updated, and its report lost; read first, it is
    either updated or tried again."""
    outcomes: dict[int, JobOutcome] = {}
    reports: list[tuple[Any, int]] = []
    for interaction in interactions:
        outcome = _job_finish_outcome(interaction)
        if outcome.msgid is not None:
            outcomes.setdefault(outcome.msgid, outcome)  # the first report of a msgid; a later copy changes nothing
            reports.append((interaction, outcome.msgid))
    if not outcomes:
        return 0
    known = set(Delivery.objects.filter(msgid__in=outcomes).values_list("msgid", flat=True))
    updated = _outcomes_write(outcomes)
    for interaction, msgid in reports:
        if msgid not in known and getattr(interaction, "pk", None):
            from ...tasks import delivery_job_finish_later

            interaction_id = interaction.pk
            transaction.on_commit(
                lambda interaction_id=interaction_id: delivery_job_finish_later.apply_async(
                    (interaction_id, 1), countdown=2
                )
            )
    return updated


class Written(NamedTuple):
    """A row whose msgid was just written, as the page that wrote it knows it."""

    msgid: int
    subscriber_id: int
    claimed_at: dt.datetime | None


def deliveries_early_reports_apply(
    *, delivery_ids: Collection[int] = (), written: Sequence[Written] | None = None
) -> int:
    """The reports WeChat posted before these rows' msgids were written (the page calls this once it wrote them):
    their outcomes, as deliveries_job_finish would have written them. Returns the rows updated. The rows are read by
    their ids, or given as the page wrote them (`written`: no query for them; a report changes only a row that has its
    msgid and is still open to one, whatever the list says).

    Together with deliveries_job_finish no order loses a report: the callback commits the report before its
    follow-up runs, and the page commits the msgids before it looks here. A report committed before this look-up is
    found here; one committed after it finds the msgid in its follow-up. When both apply one, the second finds the row
    no longer open to a report (a locked, guarded transition): counted once.

    Two queries (the rows' msgids, unless given, then their recipients' recent reports through
    interaction_sub_created_idx; a notice's report carries its msgid inside its list), and a transition only when an
    early report is there."""
    from accounts.models import Interaction

    if written is not None:
        rows = [(w.msgid, w.subscriber_id, w.claimed_at) for w in written]
    else:
        rows = list(
            Delivery.objects.filter(
                AnyOf("pk", delivery_ids), msgid__isnull=False, status__in=(D.SENT, D.UNKNOWN)
            ).values_list("msgid", "subscriber_id", "claimed_at")
        )
    if not rows:
        return 0
    msgids = {msgid for msgid, _, _ in rows}
    claimed = [at for _, _, at in rows if at is not None]
    reports = Interaction.objects.filter(AnyOf("subscriber_id", {sub for _, sub, _ in rows}), kind__in=REPORT_KINDS)
    if claimed:  # a report comes after its claim; WeChat's CreateTime may be off our clock by a little
        reports = reports.filter(created_at__gte=min(claimed) - EARLY_REPORT_MARGIN)
    outcomes: dict[int, JobOutcome] = {}
    for interaction in reports.order_by("created_at", "id").only("kind", "msg_id", "status", "data"):
        outcome = _job_finish_outcome(interaction)
        if outcome.msgid in msgids:
            outcomes.setdefault(outcome.msgid, outcome)  # the first report of a msgid, as deliveries_job_finish
    return _outcomes_write(outcomes) if outcomes else 0


def delivery_job_finish_retry(*, interaction_id: int, attempt: int) -> bool:
    """The later try of an unmatched report. True when it is done (matched, or given up after 8 attempts)."""
    from accounts.models import Interaction

    interaction = Interaction.objects.filter(pk=interaction_id).first()
    if interaction is None:
        return True
    return _job_finish_apply(interaction).matched or attempt >= JOB_FINISH_ATTEMPTS


class JobOutcome(NamedTuple):
    """What a template report says about the delivery with its msgid."""

    msgid: int | None
    status: str
    reason: str


def _job_finish_outcome(interaction: Any) -> JobOutcome:
    data = interaction.data or {}
    if getattr(interaction, "kind", "") == NOTICE_SENT:  # a subscription notice's report: one item per notice
        items = notice_items(NOTICE_SENT, data)
        if not items:
            return JobOutcome(None, D.FAILED, "")
        item = items[0]
        if item.error_code == 0 or item.error_status == "success":
            return JobOutcome(item.msg_id, D.DELIVERED, "")
        reason = item.error_status.replace("failed:", "").strip().replace(" ", "_") or f"error_{item.error_code}"
        return JobOutcome(item.msg_id, D.FAILED, reason[:64])
    msgid = _int(interaction.msg_id or data.get("MsgID"))
    status = (getattr(interaction, "status", "") or data.get("Status") or "").strip()
    if status == "success":
        return JobOutcome(msgid, D.DELIVERED, "")
    return JobOutcome(msgid, D.FAILED, (status.replace("failed:", "").strip().replace(" ", "_") or "failed")[:64])


def _job_finish_apply(interaction: Any) -> JobFinish:
    outcome = _job_finish_outcome(interaction)
    if outcome.msgid is None:
        return JobFinish(0, True)
    known = Delivery.objects.filter(msgid=outcome.msgid).exists()  # before the update (see deliveries_job_finish)
    updated = _outcomes_write({outcome.msgid: outcome})
    return JobFinish(updated, bool(updated) or known)


def _outcomes_write(outcomes: dict[int, JobOutcome]) -> int:
    """The reports' outcomes on the rows with their msgids still open to one (sent, unknown, sending), with the
    push counters' difference (tallies.py), in one transaction. Returns the rows updated."""
    rows = Delivery.objects.filter(msgid__in=outcomes, status__in=(D.SENT, D.UNKNOWN, D.SENDING))
    now = timezone.now()
    changes = {
        pk: {"status": outcomes[msgid].status, "reason": outcomes[msgid].reason, "finished_at": now}
        for pk, msgid in rows.values_list("pk", "msgid")
    }
    return tallies.deliveries_transition(rows=rows, changes=changes) if changes else 0


def mass_job_finish(interaction: Any) -> int:
    """MASSSENDJOBFINISH: the batch's totals, and for articles their URLs and WeChat's copyright check (set, not
    added: a repeated report changes nothing)."""
    from wechat_crm.wechat.client.publishing import mass_job_articles

    data = interaction.data or {}
    msg_id = _int(interaction.msg_id or data.get("MsgID"))
    if msg_id is None:
        return 0
    article_urls, copyright_check = mass_job_articles(data)
    return MassBatch.objects.filter(msg_id=msg_id).update(
        article_urls={str(k): v for k, v in article_urls.items()},
        copyright_check=copyright_check,
        job_status=(data.get("Status") or "")[:64],
        total_count=_int(data.get("TotalCount")),
        filter_count=_int(data.get("FilterCount")),
        sent_count=_int(data.get("SentCount")),
        error_count=_int(data.get("ErrorCount")),
    )
