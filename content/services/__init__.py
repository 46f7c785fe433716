"""Changes of state in the content library, the per-subscriber rendering of templates, and tracked links.

Articles and topics: library.py (their names are importable from here too).

Pushes call, per recipient:
    template_render(template, subscriber=..., context=template_context(article=..., push=...))  -> WeChat's `data`
    template_url(template, subscriber_id=..., push_id=...)                                      -> the tracked `url`
    links_rewrite(text, subscriber_id=..., push_id=..., content_id=...)                         -> tracked text
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Interaction, Subscriber

from .. import links, templating
from ..errors import LinkTokenInvalid
from ..models import Article, MessageTemplate
from .library import (
    ARTICLE_FIELDS,
    ARTICLE_TRANSITIONS,
    article_create,
    article_publish,
    article_set_status,
    article_unpublish,
    article_update,
    topic_create,
    topic_delete,
    topic_update,
)

logger = logging.getLogger(__name__)

TEMPLATE_FIELDS = (
    "title",
    "purpose",
    "wechat_template_id",
    "fields",
    "link_url",
    "article",
    "miniprogram_appid",
    "miniprogram_pagepath",
)

# --- Message templates --------------------------------------------------------------------------------------------


def template_save(*, template: MessageTemplate, by: Any = None) -> MessageTemplate:
    """Validate (fields, links) and save a template; a changed template gets a new version (its compiled cache key).

    Raises TemplateInvalid for bad fields; django's ValidationError for the other fields.
    """
    template.fields = templating.fields_check(template.fields)
    template.full_clean(exclude=["fields"])
    if template.pk is None:
        template.created_by = template.created_by or by
        template.version = 1
        template.save()
    else:
        template.version = F("version") + 1
        template.save()
        template.refresh_from_db(fields=["version"])
    return template


def template_create(*, by: Any = None, **data: Any) -> MessageTemplate:
    unknown = set(data) - set(TEMPLATE_FIELDS)
    if unknown:
        raise TypeError(f"unknown template fields: {sorted(unknown)}")
    return template_save(template=MessageTemplate(**data), by=by)


def template_update(*, template: MessageTemplate, data: Mapping[str, Any]) -> MessageTemplate:
    for name in TEMPLATE_FIELDS:
        if name in data:
            setattr(template, name, data[name])
    return template_save(template=template)


def template_context(*, article: Article | Mapping | None = None, push: Any = None) -> dict[str, Any]:
    """The part of the rendering context shared by every recipient of a push: build it once per push."""
    context: dict[str, Any] = {}
    if article is not None:
        context["article"] = templating.article_context(article)
    if push is not None:
        context["push"] = (
            {f: push.get(f, "") for f in templating.PUSH_FIELDS}
            if isinstance(push, Mapping)
            else {f: getattr(push, f, "") for f in templating.PUSH_FIELDS}
        )
    return context


def template_render(
    template: MessageTemplate, *, subscriber: Subscriber | Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> dict[str, dict[str, str]]:
    """WeChat's `data` for one recipient: {key: {"value": ..., "color": ...}} ("color" only when the field has one).

    `subscriber` is a Subscriber or a mapping of its renderable fields (content.templating.SUBSCRIBER_FIELDS).
    `context` comes from template_context(); without an article there, the template's own article is used.
    Compiled fields are cached per (template id, version), so a push compiles each template once per process.
    """
    ctx: dict[str, Any] = dict(context or {})
    if "article" not in ctx and template.article_id is not None:
        ctx["article"] = templating.article_context(template.article)
    ctx["subscriber"] = templating.subscriber_context(subscriber)
    return templating.render_fields(templating.compiled_for(template), ctx)


def template_url(template: MessageTemplate, *, subscriber_id: int, push_id: int | None = None) -> str:
    """The tracked link opened when the subscriber taps the message ("" when the template links nowhere)."""
    return template_url_maker(template, push_id=push_id)(subscriber_id)


def template_url_maker(template: MessageTemplate, *, push_id: int | None = None) -> Callable[[int], str]:
    """`template_url` for many subscribers of one push: the target and its link row are looked up once."""
    if template.article_id is not None:
        return link_tracker(template.article.public_url(), push_id=push_id, content_id=template.article_id)
    if template.link_url:
        return link_tracker(template.link_url, push_id=push_id)
    return lambda subscriber_id: ""


# --- Tracked links ------------------------------------------------------------------------------------------------


@functools.cache
def _redirect_path() -> str:
    return reverse("content:link-redirect", kwargs={"token": "x"})[:-1]


def _redirect_prefix() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + _redirect_path()


def link_track(url: str, *, subscriber_id: int, push_id: int | None = None, content_id: int | None = None) -> str:
    """The absolute tracked address (PUBLIC_BASE_URL/r/<token>) that records a click and redirects to `url`.

    The token holds ids only (subscriber, push, content, link row), is signed and expires after
    TRACKED_LINK_MAX_AGE_DAYS.
    """
    return link_tracker(url, push_id=push_id, content_id=content_id)(subscriber_id)


def link_tracker(url: str, *, push_id: int | None = None, content_id: int | None = None) -> Callable[[int], str]:
    """`link_track` for many subscribers: the link row and the address's prefix are looked up once, then each
    subscriber's address costs one signature (a push's page renders the same link for hundreds of recipients)."""
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs can be tracked")
    prefix, link_id = _redirect_prefix(), links.link_id_for(url)

    token = links.token_maker(push_id=push_id, content_id=content_id, link_id=link_id)

    def track(subscriber_id: int) -> str:
        return prefix + token(subscriber_id)

    return track


def links_rewrite(
    text_or_html: str, *, subscriber_id: int, push_id: int | None = None, content_id: int | None = None
) -> str:
    """Replace every http(s) link in the text (bare URLs and <a href>) with its tracked address; images stay as they
    are, links that are already tracked are left alone."""
    prefix = _redirect_prefix()
    return links.rewrite(
        text_or_html,
        lambda url: link_track(url, subscriber_id=subscriber_id, push_id=push_id, content_id=content_id),
        is_tracked=lambda url: url.startswith(prefix),
    )


def link_max_age_seconds() -> float:
    return settings.TRACKED_LINK_MAX_AGE_DAYS * 86400


def link_target(token: str) -> links.LinkPayload:
    """The payload of a token; LinkTokenInvalid / LinkTokenExpired (carrying its URL) when it cannot be used."""
    return links.token_read(token, max_age_seconds=link_max_age_seconds(), url_of=links.url_for)


def _subscriber_touch(*, subscriber_id: int, at: datetime) -> int:
    """The click's UPDATE of last_interaction_at. On PostgreSQL it also tells the transaction's commit not to wait for
    the disk (set_config(..., true) is SET LOCAL, run by the same statement): the commit stays atomic, and a crash
    of PostgreSQL may forget the last fraction of a second of clicks, never half of one. Waiting for the flush was
    most of a click's time on a busy disk (bench/links.py). The callback, whose rows WeChat would not send again,
    keeps waiting."""
    if connection.vendor != "postgresql":
        return Subscriber.objects.filter(pk=subscriber_id).update(
            last_interaction_at=Greatest(Coalesce(F("last_interaction_at"), at), at)
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Subscriber._meta.db_table} SET last_interaction_at = GREATEST(COALESCE(last_interaction_at, %s), "  # noqa: S608
            "%s) WHERE id = %s AND set_config('synchronous_commit', 'off', true) = 'off'",
            [at, at, subscriber_id],
        )
        return cursor.rowcount


def link_url(payload: links.LinkPayload) -> str:
    """The target URL of a token's payload; LinkTokenInvalid for a link row that is gone or not http(s)."""
    url = links.url_for(payload.link_id)
    if url is None or not url.lower().startswith(("http://", "https://")):
        raise LinkTokenInvalid(_("This link is not valid."))
    return url


def link_click_record(*, token: str, at: datetime | None = None) -> str:
    """Record one click of a tracked link and return the URL to redirect to.

    No database query on the hot path (the target URL is cached per process, link rows never change) and one Redis
    call (content.clicks): the click window's marker and, for a first click, its append to the click buffer, which
    a Celery task stores by batches as accounts.Interaction rows of kind "link_click" (a unique dedupe key, data
    {push_id, content_id, link_id, engaged: true}, the subscriber's last_interaction_at). Repeated clicks of one link
    (and push) by one subscriber within TRACKED_LINK_CLICK_WINDOW seconds count once: the first is remembered in the
    cache for the window, and the dedupe key names the window's time slot, so that even without the cache two clicks
    of one slot are one row. A subscriber who no longer exists (erased) is redirected without a record. When Redis
    does not answer, the click is stored directly (click_store). Raises LinkTokenInvalid / LinkTokenExpired.
    """
    from .. import clicks

    payload = link_target(token)
    url = link_url(payload)
    now = at or timezone.now()
    window = max(1, int(settings.TRACKED_LINK_CLICK_WINDOW))
    clicker = f"{payload.subscriber_id}:{payload.link_id}:{payload.push_id or 0}"
    buffered = clicks.click_buffer(
        payload=payload,
        at=now,
        window=window,
        dedupe_key=f"link_click:{clicker}:{int(now.timestamp()) // window}",
        marker=f"link_click:{clicker}",
    )
    if not buffered:  # Redis did not answer: the time slot's dedupe key alone stops repeats
        click_store(payload=payload, subscriber_id=payload.subscriber_id, url=url, at=now, window_checked=True)
    return url


def click_store(
    *,
    payload: links.LinkPayload,
    subscriber_id: int,
    url: str,
    kind: str = Interaction.Kind.LINK_CLICK,
    extra: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    window_checked: bool = False,
) -> int | None:
    """Store one click of the link by `subscriber_id` (the link's own subscriber, or whoever web authorisation
    found in WeChat's browser) as an interaction of `kind`: "link_click" (touching last_interaction_at) or
    "link_forward" (someone who does not follow: their row is not touched). The id of the new interaction; None
    for a repeat within the click window or a subscriber that no longer exists. `window_checked`: the caller
    already tried the cache's marker (the click buffer, when Redis did not answer): not asked again."""
    now = at or timezone.now()
    window = max(1, int(settings.TRACKED_LINK_CLICK_WINDOW))
    clicker = f"{subscriber_id}:{payload.link_id}:{payload.push_id or 0}"
    prefix = "link_click" if kind == Interaction.Kind.LINK_CLICK else str(kind)
    marker = f"{prefix}:{clicker}" if prefix != "link_click" else clicker
    if not window_checked and not _click_first_in_window(marker, window):
        return None
    # One commit for both statements; no savepoint inside a caller's transaction (the view runs in autocommit: a
    # repeat of the time slot rolls back both and redirects).
    try:
        with transaction.atomic(savepoint=False):
            if kind == Interaction.Kind.LINK_CLICK:
                updated = _subscriber_touch(subscriber_id=subscriber_id, at=now)
            else:
                updated = Subscriber.objects.filter(pk=subscriber_id).exists()
            if not updated:
                logger.info("tracked link clicked for a subscriber that no longer exists; not recorded")
                return None
            has_follow_ups = bool(_follow_ups_for(kind))
            interaction = Interaction.objects.create(
                subscriber_id=subscriber_id,
                kind=kind,
                dedupe_key=f"{prefix}:{clicker}:{int(now.timestamp()) // window}",
                url=url[:2048],
                data={
                    "push_id": payload.push_id,
                    "content_id": payload.content_id,
                    "link_id": payload.link_id,
                    "engaged": kind == Interaction.Kind.LINK_CLICK,
                    **(extra or {}),
                },
                raw_xml="",
                reply="",
                created_at=now,
                received_at=now,
                processed_at=None if has_follow_ups else now,
            )
            if has_follow_ups:
                _enqueue_follow_ups(interaction.pk)
    except IntegrityError:  # a repeat in the same time slot (the cache was unavailable or emptied)
        return None
    logger.debug("tracked link %s recorded: interaction=%s link=%s", kind, interaction.pk, payload.link_id)
    return interaction.pk


def _click_first_in_window(clicker: str, window: int) -> bool:
    """Whether this is the first click of `clicker` ("<subscriber>:<link>:<push>", prefixed for other kinds than
    link_click) within the window."""
    from django.core.cache import cache

    try:
        return bool(cache.add(f"link_click:{clicker}", 1, timeout=window))
    except Exception:  # the cache is down: the dedupe key's time slot still stops most repeats
        return True


def _follow_ups_for(kind: str) -> list:
    """The follow-ups of the kind in the table of wechat_crm.wechat.dispatch."""
    from wechat_crm.wechat.dispatch import follow_ups_for

    return follow_ups_for(kind)


def _enqueue_follow_ups(interaction_id: int) -> None:
    """Hand the follow-ups to the outbox relay after commit, as the callback does: the click's request never waits
    for the broker (a publish per click cost more than the click itself, bench/links.py), a burst of clicks
    becomes one task, and if the broker is down the accounts sweeper picks the row up later."""
    from accounts import outbox

    transaction.on_commit(lambda: outbox.submit(interaction_id))


__all__ = [
    "ARTICLE_FIELDS",
    "ARTICLE_TRANSITIONS",
    "TEMPLATE_FIELDS",
    "article_create",
    "article_publish",
    "article_set_status",
    "article_unpublish",
    "article_update",
    "click_store",
    "link_click_record",
    "link_max_age_seconds",
    "link_target",
    "link_track",
    "link_tracker",
    "link_url",
    "links_rewrite",
    "template_context",
    "template_create",
    "template_render",
    "template_save",
    "template_update",
    "template_url",
    "template_url_maker",
    "topic_create",
    "topic_delete",
    "topic_update",
]
