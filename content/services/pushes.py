"""Pushes: the guarded state machine, scheduling, the exactly-once claim of due pushes, and resolving recipients.

draft -> scheduled -> sending -> sent | partially_failed, with cancelled from draft, scheduled and sending.
Only `push_set_status` changes the status, under a row lock; an illegal move raises PushStatusError.

A due push is claimed by one process only: `pushes_claim_due` locks due rows with SELECT ... FOR UPDATE SKIP LOCKED
and moves them scheduled -> sending in the same transaction; two beats or many workers never claim one push twice.
`push_start` then writes one Delivery per (push, subscriber) with one INSERT ... SELECT from the segment's query
(unique constraint, ON CONFLICT DO NOTHING) and fans out page tasks of delivery-id ranges.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from ..errors import PushInvalid, PushStatusError
from ..models import Delivery, Push
from .segments import segment_subscribers

logger = logging.getLogger(__name__)

S = Push.Status
TRANSITIONS: dict[str, set[str]] = {
    S.DRAFT: {S.SCHEDULED, S.CANCELLED},
    S.SCHEDULED: {S.DRAFT, S.SENDING, S.CANCELLED},
    S.SENDING: {S.SENT, S.PARTIALLY_FAILED, S.CANCELLED},
    S.SENT: set(),
    S.PARTIALLY_FAILED: set(),
    S.CANCELLED: set(),
}
FINAL_PUSH = {S.SENT, S.PARTIALLY_FAILED, S.CANCELLED}
PUSH_FIELDS = ("name", "channel", "article", "template", "notice_template", "notice_values", "text", "segment",
               "mass_tag", "send_at", "frequency_cap", "ignore_quiet_hours", "allow_marketing_template")  # fmt: skip
PAGE_SIZE = {"template": 500, "custom": 500, "notice": 500, "mass_tag": 10_000, "mass_openid": 10_000, "news": 10_000}
CLAIM_LIMIT = 20


def page_size(channel: str) -> int:
    from django.conf import settings

    sizes = getattr(settings, "PUSH_PAGE_SIZES", None) or {}
    return int(sizes.get(channel) or PAGE_SIZE[channel])


@transaction.atomic
def push_set_status(push: Push, *, to: str, at: dt.datetime | None = None) -> Push:
    """Move the push to `to` under a row lock, or raise PushStatusError. Returns the push, refreshed."""
    locked = Push.objects.select_for_update().get(pk=push.pk)
    if to not in S.values:
        raise PushStatusError(_("Unknown status %(status)s.") % {"status": to})
    if to not in TRANSITIONS[locked.status]:
        raise PushStatusError(
            _('"%(name)s" cannot go from %(from)s to %(to)s.')
            % {"name": locked.name, "from": locked.get_status_display(), "to": S(to).label},
            extra={"status": locked.status, "to": to},
        )
    now = at or timezone.now()
    locked.status = to
    fields = ["status", "updated_at"]
    if to == S.SENDING:
        locked.started_at = now
        fields.append("started_at")
    if to in FINAL_PUSH:
        locked.finished_at = now
        fields.append("finished_at")
    locked.save(update_fields=fields)
    for name in ("status", "started_at", "finished_at", "updated_at"):
        setattr(push, name, getattr(locked, name))
    return push


def push_template_check(*, channel: str, template: Any, allow_marketing_template: bool) -> None:
    """The template policy (conversations.policy): a marketing template goes out as a template message only with
    the push's explicit override. PushInvalid names the field otherwise."""
    from ..models import MessageTemplate

    if (
        channel == Push.Channel.TEMPLATE
        and template is not None
        and template.purpose == MessageTemplate.Purpose.MARKETING
        and not allow_marketing_template
    ):
        message = _(
            "“%(template)s” is a marketing template: WeChat reserves template messages for service notices and may "
            "withdraw the account's template rights. Tick “allow a marketing template” to send it anyway, or use a "
            "subscription notice."
        ) % {"template": template.title}
        raise PushInvalid(message, extra={"fields": {"allow_marketing_template": [message]}})


def _check_notice(push: Push) -> None:
    """A subscription notice's template and values, checked when the push is saved (and again when it is sent):
    a value that breaks WeChat's rules is refused naming its field ("notice_values.thing1")."""
    if push.channel != Push.Channel.NOTICE:
        return
    if push.notice_template_id is None:
        raise PushInvalid(
            _("A subscription notice push needs a notice template."),
            extra={"fields": {"notice_template": [_("Choose a notice template.")]}},
        )
    from .notices import notice_values_check

    push.notice_values = notice_values_check(template=push.notice_template, values=push.notice_values)


def _check_sendable(push: Push) -> None:
    if push.channel == Push.Channel.TEMPLATE and push.template_id is None:
        raise PushInvalid(_("A template message push needs a message template."))
    push_template_check(channel=push.channel, template=push.template if push.template_id else None,
                        allow_marketing_template=push.allow_marketing_template)  # fmt: skip
    _check_notice(push)
    needs_text = push.channel in (Push.Channel.CUSTOM, Push.Channel.MASS_OPENID, Push.Channel.MASS_TAG)
    if needs_text and push.article_id is None and not push.text.strip():
        raise PushInvalid(_("This channel needs an article or a text."))
    if push.channel == Push.Channel.NEWS:  # WeChat's rules for the account type, before any call
        from publishing.services.news import by_openid, news_check

        if push.mass_tag_id is not None and push.mass_tag.wechat_tag_id is None:
            raise PushInvalid(_("A mass send by tag needs a tag that exists on WeChat."))
        recipients = None
        if by_openid(push) and push.segment_id is not None:
            recipients = segment_subscribers(rules=push.segment.rules, now=timezone.now()).count()
        news_check(push=push, recipients=recipients)
    elif push.channel == Push.Channel.MASS_TAG:
        if push.mass_tag_id is None or push.mass_tag.wechat_tag_id is None:
            raise PushInvalid(_("A mass send by tag needs a tag that exists on WeChat."))
    elif push.segment_id is None:
        raise PushInvalid(_("Choose a segment."))


@transaction.atomic
def push_create(*, by: Any = None, **data: Any) -> Push:
    """A new draft push with the fields of PUSH_FIELDS, created by `by` (a user, or None)."""
    unknown = set(data) - set(PUSH_FIELDS)
    if unknown:
        raise TypeError(f"unknown push fields: {sorted(unknown)}")
    push_template_check(channel=data.get("channel", Push.Channel.TEMPLATE), template=data.get("template"),
                        allow_marketing_template=bool(data.get("allow_marketing_template")))  # fmt: skip
    push = Push(**data, created_by=by if getattr(by, "pk", None) else None)
    _check_notice(push)
    push.save()
    return push


@transaction.atomic
def push_update(*, push: Push, data: Mapping[str, Any]) -> Push:
    """Edit a draft or scheduled push (a scheduled one keeps its status; send_at moves through push_reschedule)."""
    locked = Push.objects.select_for_update().get(pk=push.pk)
    if locked.status not in (S.DRAFT, S.SCHEDULED):
        raise PushStatusError(_("Only a draft or scheduled push can be edited."))
    changed = [name for name in PUSH_FIELDS if name in data and name != "send_at"]
    merged = {name: data[name] if name in data else getattr(push, name) for name in
              ("channel", "template", "allow_marketing_template")}  # fmt: skip
    push_template_check(**merged)
    for name in changed:
        setattr(push, name, data[name])
    _check_notice(push)
    if changed:
        push.save(update_fields=[*(f"{n}" for n in changed), "updated_at"])
    if "send_at" in data and data["send_at"] != locked.send_at:
        if locked.status == S.SCHEDULED:
            push_reschedule(push=push, send_at=data["send_at"])
        else:
            push.send_at = data["send_at"]
            push.save(update_fields=["send_at", "updated_at"])
    return push


def _enqueue_dispatch(push_id: int, send_at: dt.datetime) -> None:
    """A countdown task at send_at claims the push without waiting for the next beat (the beat is the safety net)."""
    from ..tasks import push_dispatch

    delay = max(0.0, (send_at - timezone.now()).total_seconds())

    def enqueue() -> None:
        try:
            push_dispatch.apply_async((push_id,), countdown=delay)
        except Exception:  # broker down: the beat's pushes_dispatch_due claims it
            logger.warning("could not enqueue the dispatch of push %s", push_id, exc_info=True)

    transaction.on_commit(enqueue)


@transaction.atomic
def push_schedule(*, push: Push, send_at: dt.datetime | None = None, by: Any = None) -> Push:
    """Schedule a draft for `send_at` (default: its send_at, or now). A push that is already scheduled moves to
    `send_at` (default: its own send_at) through push_reschedule. The admin's button and action and the API's
    schedule call this, so the three behave alike. Raises PushInvalid / PushStatusError."""
    locked = Push.objects.select_for_update().get(pk=push.pk)
    if locked.status == S.SCHEDULED:
        return push_reschedule(push=push, send_at=send_at or locked.send_at or timezone.now())
    push.refresh_from_db()
    _check_sendable(push)
    push.send_at = send_at or push.send_at or timezone.now()
    push.save(update_fields=["send_at", "updated_at"])
    push_set_status(push, to=S.SCHEDULED)
    _enqueue_dispatch(push.pk, push.send_at)
    return push


@transaction.atomic
def push_reschedule(*, push: Push, send_at: dt.datetime) -> Push:
    """Move a scheduled push to `send_at` and enqueue its dispatch for the new time (a dispatch that finds the
    push not yet due does nothing)."""
    locked = Push.objects.select_for_update().get(pk=push.pk)
    if locked.status != S.SCHEDULED:
        raise PushStatusError(_("Only a scheduled push can be rescheduled."))
    locked.send_at = send_at
    locked.save(update_fields=["send_at", "updated_at"])
    push.send_at, push.status, push.updated_at = locked.send_at, locked.status, locked.updated_at
    _enqueue_dispatch(push.pk, send_at)
    return push


@transaction.atomic
def push_cancel(*, push: Push) -> Push:
    """Cancel; during a send the remaining pages see the status and skip their queued deliveries."""
    from .deliveries import tallies

    tallies.tally_lock()
    push_set_status(push, to=S.CANCELLED)
    n = Delivery.objects.filter(push_id=push.pk, status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.SKIPPED, reason="cancelled", finished_at=timezone.now()
    )
    tallies.tally_open_rows_closed(push_id=push.pk, status=Delivery.Status.SKIPPED, reason="cancelled", n=n)
    return push


def pushes_claim_due(*, now: dt.datetime | None = None, push_id: int | None = None) -> list[int]:
    """Claim due pushes (scheduled, send_at <= now): locked with SKIP LOCKED and moved to sending in one
    transaction, so each is claimed exactly once. Their start task is enqueued after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        qs = Push.objects.select_for_update(skip_locked=True).filter(status=S.SCHEDULED, send_at__lte=now)
        if push_id is not None:
            qs = qs.filter(pk=push_id)
        claimed = list(qs.order_by("send_at", "id")[:CLAIM_LIMIT])
        for push in claimed:
            push_set_status(push, to=S.SENDING, at=now)
        ids = [p.pk for p in claimed]
        if ids:
            transaction.on_commit(lambda: _enqueue_start(ids))
    return ids


def _enqueue_start(ids: list[int]) -> None:
    from ..tasks import push_start

    for push_id in ids:
        try:
            push_start.delay(push_id)
        except Exception:  # the beat's resume picks up a push whose recipients were never resolved
            logger.warning("could not enqueue the start of push %s", push_id, exc_info=True)


def push_resolve(*, push: Push, now: dt.datetime | None = None) -> int:
    """Write one queued Delivery per recipient with ONE INSERT ... SELECT from the segment query (followers only,
    resolved now). Safe to run twice: the unique (push, subscriber) constraint drops repeats. Returns the count.

    A subscription notice's recipients whom the send policy refuses for consent (conversations.policy
    `consent_refusals`: no consent recorded that allows a notice now, and no earlier rule refusing them) are written
    skipped with the reason `no_consent` by the same statement: their rows never go through a page (nobody else is
    ever called, as before). Whoever may be sent to is queued, and decided again by the policy when their page
    sends, consent included (a withdrawal meanwhile is seen then)."""
    now = now or timezone.now()
    from accounts.models import Subscriber

    news_to_all = push.channel == Push.Channel.NEWS and getattr(getattr(push, "news", None), "to_all", False)
    if news_to_all:  # a news push to every follower (one mass send to all)
        members = Subscriber.objects.filter(is_following=True)
    elif push.mass_tag_id is not None and push.channel in (Push.Channel.MASS_TAG, Push.Channel.NEWS):
        members = Subscriber.objects.filter(is_following=True, tags=push.mass_tag_id)
    else:
        members = segment_subscribers(rules=push.segment.rules, now=now)
    from .deliveries import tallies

    with transaction.atomic():  # the recipients' counter with the rows it counts
        if push.channel == Push.Channel.NOTICE:
            inserted, skipped = _notice_deliveries_insert(push, members, now)
        else:
            inserted, skipped = _deliveries_insert(push, members, now), 0
        deltas = {(push.pk, tallies.RECIPIENTS): inserted}
        if skipped:
            from conversations import policy as send_policy

            for key in tallies.row_keys(Delivery.Status.SKIPPED, send_policy.Reason.NO_CONSENT, None, None):
                deltas[(push.pk, key)] = skipped
        tallies.tally_add(deltas)
    count = Delivery.objects.filter(push_id=push.pk).count()
    Push.objects.filter(pk=push.pk).update(recipients=count, resolved_at=now)
    push.recipients, push.resolved_at = count, now
    tallies.baseline_record(push=push)
    return count


def _deliveries_insert(push: Push, members: Any, now: dt.datetime) -> int:
    """One queued row per member (one statement): the rows inserted."""
    select_sql, params = members.order_by("id").values("id").query.sql_with_params()
    table = Delivery._meta.db_table
    sql = (
        f"INSERT INTO {table} (push_id, subscriber_id, channel, status, reason, attempts, created_at) "  # noqa: S608
        f"SELECT %s, m.id, %s, %s, '', 0, %s FROM ({select_sql}) m ORDER BY m.id "
        "ON CONFLICT (push_id, subscriber_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [push.pk, push.channel, Delivery.Status.QUEUED, now, *params])
        return cursor.rowcount


def _notice_deliveries_insert(push: Push, members: Any, now: dt.datetime) -> tuple[int, int]:
    """A notice's rows: queued, or skipped for consent as the send policy decides it set-based (one statement on
    PostgreSQL). Returns (the rows inserted, those of them skipped)."""
    from conversations import policy as send_policy

    decided = send_policy.consent_refusals(send=send_policy.Send.for_push(push), subscribers=members, now=now)
    select_sql, params = decided.order_by("id").values("id", "consent_refused").query.sql_with_params()
    table = Delivery._meta.db_table
    columns = "(push_id, subscriber_id, channel, status, reason, attempts, created_at, finished_at)"
    d, no_consent = Delivery.Status, send_policy.Reason.NO_CONSENT
    if connection.vendor == "postgresql":
        refused = "CASE WHEN m.consent_refused THEN"
        sql = (
            f"WITH ins AS (INSERT INTO {table} {columns} "  # noqa: S608
            f"SELECT %s, m.id, %s, {refused} %s ELSE %s END, {refused} %s ELSE '' END, 0, %s, {refused} %s END "
            f"FROM ({select_sql}) m ORDER BY m.id "
            "ON CONFLICT (push_id, subscriber_id) DO NOTHING RETURNING status) "
            "SELECT count(*), count(*) FILTER (WHERE status = %s) FROM ins"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [push.pk, push.channel, d.SKIPPED, d.QUEUED, no_consent, now, now, *params, d.SKIPPED])
            inserted, skipped = cursor.fetchone()
        return inserted, skipped
    counts = []  # elsewhere (SQLite: no INSERT ... RETURNING inside WITH): the skipped rows, then the queued ones
    for refused, status, reason, finished_at in ((True, d.SKIPPED, no_consent, now), (False, d.QUEUED, "", None)):
        sql = (
            f"INSERT INTO {table} {columns} SELECT %s, m.id, %s, %s, %s, 0, %s, %s "  # noqa: S608
            f"FROM ({select_sql}) m WHERE m.consent_refused = %s ORDER BY m.id "
            "ON CONFLICT (push_id, subscriber_id) DO NOTHING"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [push.pk, push.channel, status, reason, now, finished_at, *params, refused])
            counts.append(cursor.rowcount)
    return sum(counts), counts[0]


def push_pages(*, push_id: int, size: int) -> list[tuple[int, int | None]]:
    """Ranges [lo, hi) of the push's queued delivery ids, `size` rows each (one query, numbered by the database)."""
    table = Delivery._meta.db_table
    sql = (
        f"SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM {table} "  # noqa: S608
        "WHERE push_id = %s AND status = %s) t WHERE (t.rn - 1) %% %s = 0 ORDER BY id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [push_id, Delivery.Status.QUEUED, size])
        starts = [row[0] for row in cursor.fetchall()]
    return [(lo, starts[i + 1] if i + 1 < len(starts) else None) for i, lo in enumerate(starts)]


def push_start(*, push_id: int) -> int:
    """Resolve the recipients (once: a second copy of the task finds them resolved and stops) and enqueue one page
    task per range after commit. Returns the number of pages."""
    from ..tasks import push_send_page

    with transaction.atomic():
        push = Push.objects.select_for_update(of=("self",)).select_related("segment").filter(pk=push_id).first()
        if push is None or push.status != S.SENDING or push.resolved_at is not None:
            return 0
        push_resolve(push=push)
        pages = push_pages(push_id=push.pk, size=page_size(push.channel))

        def enqueue() -> None:
            for lo, hi in pages:  # a lost enqueue is picked up by pushes_resume_stalled
                push_send_page.delay(push.pk, lo, hi)

        transaction.on_commit(enqueue)
    if not pages:
        from .deliveries import push_finish_if_done

        push_finish_if_done(push_id=push.pk)
    return len(pages)


def pushes_resume_stalled(*, now: dt.datetime | None = None, stalled_after: dt.timedelta | None = None) -> int:
    """The beat's safety net for lost tasks: a sending push whose start never ran is started again; queued
    deliveries due for over `stalled_after` get their pages enqueued again (page tasks claim rows, so a repeat
    sends nothing twice); rows stuck in "sending" (a worker died mid-page) become unknown, never resent, unless their
    message provably never started (deliveries.StartMarks): those are queued again."""
    from ..tasks import push_send_page, push_start_task
    from .deliveries import StartMarks, deliveries_recover_accepted, tallies

    now = now or timezone.now()
    if stalled_after is None:  # 0 means at once
        stalled_after = dt.timedelta(seconds=settings.PUSH_STALLED_AFTER_SECONDS)
    cutoff = now - stalled_after
    resumed = 0
    for push in Push.objects.filter(status=S.SENDING, started_at__lt=cutoff):
        if push.resolved_at is None:
            push_start_task.delay(push.pk)
            resumed += 1
            continue
        lost = Delivery.objects.filter(push_id=push.pk, status=Delivery.Status.SENDING, claimed_at__lt=cutoff)
        recovered = StartMarks.recover(push.pk, lost.values_list("pk", "attempts"))
        # WeChat took them before the worker died (see StartMarks)
        deliveries_recover_accepted(recovered.accepted, at=now)
        if recovered.unsent:  # provably never sent (see StartMarks): back to the queue, sent by the pages below
            lost.filter(pk__in=recovered.unsent).update(
                status=Delivery.Status.QUEUED, not_before=None, attempts=F("attempts") - 1
            )
        with transaction.atomic():
            tallies.tally_lock()
            n = lost.update(status=Delivery.Status.UNKNOWN, reason="worker_lost", finished_at=now)
            tallies.tally_open_rows_closed(push_id=push.pk, status=Delivery.Status.UNKNOWN, reason="worker_lost", n=n)
        stuck = Delivery.objects.filter(push_id=push.pk, status=Delivery.Status.QUEUED).exclude(not_before__gt=cutoff)
        if stuck.exists() and push.updated_at < cutoff:
            for lo, hi in push_pages(push_id=push.pk, size=page_size(push.channel)):
                push_send_page.delay(push.pk, lo, hi)
            Push.objects.filter(pk=push.pk).update(updated_at=now)
            resumed += 1
        else:
            from .deliveries import push_finish_if_done

            push_finish_if_done(push_id=push.pk)
    return resumed
