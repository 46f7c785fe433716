"""Passive replies built in the callback's request: auto-reply rules and preference keywords.

The active rules are loaded in ONE query and kept in the process for RULES_CACHE_SECONDS (saving a rule clears
this process's copy at once; other processes see it within seconds). Matching is pure Python.

The order in which they are tried for each kind is in the table of wechat_crm.wechat.dispatch. A template-message
rule answers "success" here (a template is not a passive reply): the follow-up (conversations.events) sends it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import zoneinfo
from dataclasses import dataclass
from typing import Any

import regex
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.kinds import InteractionKind as Kind
from wechat_crm.wechat.inbound import SUCCESS, InboundMessage
from wechat_crm.wechat.replies import reply_image, reply_news, reply_text

from .models import AutoReplyRule

logger = logging.getLogger(__name__)

RULES_CACHE_SECONDS = 5.0
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
T = AutoReplyRule.Trigger
TEXT_TRIGGERS = (T.TEXT_EXACT, T.TEXT_CONTAINS, T.TEXT_REGEX)


@dataclass(frozen=True, slots=True)
class CachedRule:
    id: int
    trigger: str
    pattern: str
    regex: regex.Pattern | None
    scene: str  # the channel's scene ("" = any)
    reply_kind: str
    reply_text: str
    media_id: str
    article: dict[str, Any] | None
    template_id: int | None
    active_from: dt.time | None
    active_until: dt.time | None

    def active_at(self, at: dt.datetime) -> bool:
        if self.active_from is None or self.active_until is None:
            return True
        local = at.astimezone(SHANGHAI).time()
        if self.active_from <= self.active_until:
            return self.active_from <= local < self.active_until
        return local >= self.active_from or local < self.active_until  # across midnight

    def matches(self, *, kind: str, content: str, event_key: str, scene: str) -> bool:
        if self.trigger in TEXT_TRIGGERS:
            if kind != Kind.TEXT:
                return False
            text = content.strip()
            if self.trigger == T.TEXT_EXACT:
                return text.casefold() == self.pattern.strip().casefold()
            if self.trigger == T.TEXT_CONTAINS:
                return self.pattern.casefold() in text.casefold()
            return bool(self.regex and regex_search(self, text))
        if self.trigger == T.CLICK:
            return kind == Kind.CLICK and event_key == self.pattern
        if self.trigger == T.FOLLOW and kind != Kind.SUBSCRIBE:
            return False
        if self.trigger == T.SCAN and kind != Kind.SCAN:
            return False
        return not self.scene or self.scene == scene


def regex_search(rule: CachedRule, text: str) -> bool:
    """Operators' expressions run on the callback's path with a time limit (AUTO_REPLY_REGEX_TIMEOUT seconds): one
    that takes longer (catastrophic backtracking) is skipped for this message and flagged on the rule in the admin."""
    try:
        return rule.regex.search(text, timeout=settings.AUTO_REPLY_REGEX_TIMEOUT) is not None
    except TimeoutError:
        logger.warning("auto-reply rule %s: the expression timed out; skipped", rule.id)
        from django.utils import timezone

        AutoReplyRule.objects.filter(pk=rule.id).update(regex_timed_out_at=timezone.now())
        return False


_cache: dict[str, Any] = {"until": 0.0, "rules": ()}
_lock = threading.Lock()


def rules_cache_clear() -> None:
    with _lock:
        _cache["until"] = 0.0


def _article_card(article) -> dict[str, Any]:
    cover = ""
    if article.cover:
        try:
            cover = article.cover_url()
        except ValueError:
            cover = ""
    return {"id": article.pk, "title": article.title, "description": article.digest, "pic_url": cover,
            "url": article.public_url()}  # fmt: skip


def active_rules() -> tuple[CachedRule, ...]:
    now = time.monotonic()
    if _cache["until"] > now:
        return _cache["rules"]
    rows = AutoReplyRule.objects.filter(is_active=True).select_related("channel", "article").order_by("-priority", "id")
    rules = []
    for r in rows:
        compiled = None
        if r.trigger == T.TEXT_REGEX:
            try:
                compiled = regex.compile(r.pattern)
            except regex.error:
                logger.warning("auto-reply rule %s has an invalid expression; skipped", r.pk)
                continue
        rules.append(
            CachedRule(
                id=r.pk, trigger=r.trigger, pattern=r.pattern, regex=compiled,
                scene=r.channel.scene_str if r.channel_id and r.channel else "",
                reply_kind=r.reply_kind, reply_text=r.reply_text, media_id=r.media_id,
                article=_article_card(r.article) if r.article_id else None, template_id=r.template_id,
                active_from=r.active_from, active_until=r.active_until,
            )
        )  # fmt: skip
    with _lock:
        _cache["rules"], _cache["until"] = tuple(rules), now + RULES_CACHE_SECONDS
    return _cache["rules"]


def rule_match(
    *, kind: str, content: str = "", event_key: str = "", scene: str = "", at: dt.datetime, channel_only: bool | None
) -> CachedRule | None:
    """The first active rule (by priority) that matches. channel_only: True = only rules with a channel, False =
    only rules without one, None = any."""
    for rule in active_rules():
        if channel_only is not None and bool(rule.scene) != channel_only:
            continue
        if rule.matches(kind=kind, content=content, event_key=event_key, scene=scene) and rule.active_at(at):
            return rule
    return None


def _render(message: InboundMessage, rule: CachedRule | None) -> str:
    if rule is None or rule.reply_kind == AutoReplyRule.ReplyKind.TEMPLATE:
        return SUCCESS
    if rule.reply_kind == AutoReplyRule.ReplyKind.TEXT:
        return reply_text(message, rule.reply_text)
    if rule.reply_kind == AutoReplyRule.ReplyKind.IMAGE:
        return reply_image(message, rule.media_id)
    card = dict(rule.article or {})
    from accounts.models import Subscriber
    from content.services import link_track

    subscriber_id = Subscriber.objects.filter(openid=message.openid).values_list("pk", flat=True).first()
    if subscriber_id is not None and card.get("url"):
        card["url"] = link_track(card["url"], subscriber_id=subscriber_id, content_id=card["id"])
    return reply_news(message, [card])


def _match(message: InboundMessage, channel_only: bool | None) -> CachedRule | None:
    return rule_match(
        kind=message.kind,
        content=message.attributes.get("content", ""),
        event_key=message.event_key,
        scene=message.scene,
        at=message.created_at,
        channel_only=channel_only,
    )


def reply_channel_rules(message: InboundMessage) -> str:
    """Follow/scan rules that target the channel of the message's scene (they beat the channel's welcome)."""
    return _render(message, _match(message, True)) if message.scene else SUCCESS


def reply_rules(message: InboundMessage) -> str:
    """Rules without a channel."""
    return _render(message, _match(message, False))


# --- preferences from the subscriber ---------------------------------------------------------------------------------

PAUSE_WORDS = {"TD", "T", "退订", "STOP", "取消推送"}
RESUME_WORDS = {"恢复", "恢复推送", "RESUME"}
WEEKLY_RE = re.compile(r"^(?:每周|WEEKLY)\s*(\d{1,2})$", re.IGNORECASE)
TOPIC_COMMANDS = {"只看": "only", "订阅": "in", "退订": "out"}
MENU_PREFIX = "PREF:"


@dataclass(frozen=True, slots=True)
class PreferenceCommand:
    action: str  # pause, resume, weekly, only, in, out
    value: int | None = None
    topics: tuple[str, ...] = ()


def preference_parse(text: str) -> PreferenceCommand | None:
    """A preference keyword ("TD", "恢复", "每周 2", "只看 科技 财经", "退订 科技", "订阅 科技") or None."""
    words = text.replace("\u3000", " ").split()
    if not words:
        return None
    joined = " ".join(words)
    if joined.upper() in PAUSE_WORDS:
        return PreferenceCommand("pause")
    if joined.upper() in RESUME_WORDS:
        return PreferenceCommand("resume")
    weekly = WEEKLY_RE.match(joined)
    if weekly:
        return PreferenceCommand("weekly", value=int(weekly.group(1)))
    head, rest = words[0], words[1:]
    for word, action in TOPIC_COMMANDS.items():  # "只看科技" without a space works too
        if head.startswith(word):
            names = ([head[len(word) :]] if head != word else []) + rest
            names = [n for part in names for n in re.split(r"[,，、]", part) if n]
            if names:
                return PreferenceCommand(action, topics=tuple(names))
    return None


def preference_from_menu_key(key: str) -> PreferenceCommand | None:
    """Menu click keys: PREF:TD, PREF:RESUME, PREF:WEEKLY:2, PREF:ONLY:<topic slug>, PREF:IN:<slug>, PREF:OUT:<slug>."""
    if not key.upper().startswith(MENU_PREFIX):
        return None
    parts = key[len(MENU_PREFIX) :].split(":", 1)
    verb = parts[0].upper()
    arg = parts[1] if len(parts) > 1 else ""
    if verb == "TD":
        return PreferenceCommand("pause")
    if verb == "RESUME":
        return PreferenceCommand("resume")
    if verb == "WEEKLY" and arg.isdigit():
        return PreferenceCommand("weekly", value=int(arg))
    if verb in ("ONLY", "IN", "OUT") and arg:
        return PreferenceCommand(verb.lower(), topics=tuple(arg.split(",")))
    return None


@transaction.atomic
def preference_apply(*, openid: str, command: PreferenceCommand) -> str:
    """Store the preference on the subscriber and return the confirmation (translatable)."""
    from accounts.models import Subscriber
    from content.models import Topic

    # A new subscriber is created as the callback's insert would create it (whoever writes to us follows us).
    subscriber, _created = Subscriber.objects.get_or_create(openid=openid, defaults={"is_following": True})
    if command.action == "pause":
        Subscriber.objects.filter(pk=subscriber.pk).update(pushes_paused=True)
        return _("You will no longer receive our pushes. Reply 恢复 to receive them again.")
    if command.action == "resume":
        Subscriber.objects.filter(pk=subscriber.pk).update(pushes_paused=False)
        return _("Welcome back: you will receive our pushes again. Reply TD to stop them.")
    if command.action == "weekly":
        value = max(0, min(command.value or 0, 50))
        Subscriber.objects.filter(pk=subscriber.pk).update(max_pushes_per_week=value, pushes_paused=False)
        return ngettext(
            "You will receive at most %(n)d push a week.", "You will receive at most %(n)d pushes a week.", value
        ) % {"n": value}
    topics = list(Topic.objects.filter(Q(name__in=command.topics) | Q(slug__in=command.topics)).order_by("name"))
    if not topics:
        names = "、".join(Topic.objects.order_by("name").values_list("name", flat=True)[:20])
        return _("We have no topic called %(asked)s. Topics: %(topics)s") % {
            "asked": "、".join(command.topics),
            "topics": names or "-",
        }
    listed = "、".join(t.name for t in topics)
    if command.action == "only":
        # Respected by every push: the other topics are opted out of (pushes check topics_opted_out).
        subscriber.topics_preferred.set(topics)
        subscriber.topics_opted_out.set(Topic.objects.exclude(pk__in=[t.pk for t in topics]))
        return _("From now on you will only receive %(topics)s. Reply 订阅 and a topic to add one.") % {
            "topics": listed
        }
    if command.action == "in":
        subscriber.topics_opted_out.remove(*topics)
        subscriber.topics_preferred.add(*topics)
        return _("Subscribed to %(topics)s.") % {"topics": listed}
    subscriber.topics_opted_out.add(*topics)
    subscriber.topics_preferred.remove(*topics)
    return _("You will no longer receive %(topics)s.") % {"topics": listed}


def reply_preferences(message: InboundMessage) -> str:
    """A preference keyword (text) or a preference menu key (click): stored, then confirmed."""
    if message.kind == Kind.TEXT:
        command = preference_parse(message.attributes.get("content", ""))
    elif message.kind == Kind.CLICK:
        command = preference_from_menu_key(message.event_key)
    else:
        command = None
    if command is None:
        return SUCCESS
    return reply_text(message, preference_apply(openid=message.openid, command=command))
