"""Subscription notices (订阅通知): the account's notice templates (synced from WeChat, added from its public
library), people's consent to them (from WeChat's popup and change events), and the consent check every notice send
goes through.

WeChat's only sanctioned channel for marketing-like notices: a person accepts a template in WeChat's popup, then the
account may send it (a one-time template once per acceptance, a long-term one while accepted). So a notice reaches
only people whose consent we recorded (`notice_consented_ids`), and each acceptance of a one-time template is used
by one notice (`notice_credits_use`). WeChat's refusal (43101) clears what we thought was left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from wechat_crm.db import rows_by_id
from wechat_crm.lookups import AnyOf
from wechat_crm.wechat import notice_rules
from wechat_crm.wechat.errors import WeChatArgumentInvalid, WeChatTemplateInvalid
from wechat_crm.wechat.messages import NOTICE_KEYWORDS_MAX, NOTICE_KEYWORDS_MIN, NOTICE_SCENE_DESC_MAX

from ..errors import NoticeInvalid
from ..models import NoticeConsent, NoticeConsentChange, NoticeTemplate

Decision = NoticeConsentChange.Decision


# --- values --------------------------------------------------------------------------------------------------------


def notice_values_check(*, template: NoticeTemplate, values: Mapping[str, Any]) -> dict[str, str]:
    """The values of a notice, checked against the template's keywords and WeChat's value rules. Raises
    NoticeInvalid naming each field that breaks a rule ("notice_values.thing1"); returns the values as strings."""
    if not isinstance(values, Mapping):
        raise NoticeInvalid({"notice_values": [_("Give a value per keyword, as an object.")]})
    clean = {str(k): v.strip() if isinstance(v, str) else v for k, v in values.items()}
    errors = notice_rules.values_errors(clean, template.keys)
    if errors:
        raise NoticeInvalid(
            {f"notice_values.{key}" if key else "notice_values": messages for key, messages in errors.items()}
        )
    return clean


# --- the account's templates ---------------------------------------------------------------------------------------


def _keywords(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"key": key, "name": name, "rule": notice_rules.rule_of(key)} for key, name in pairs]


@transaction.atomic
def notice_templates_sync() -> dict[str, int]:
    """The account's notice templates as WeChat holds them: new ones created, known ones updated, those WeChat no
    longer has marked not on WeChat (kept: pushes may name them)."""
    from wechat_crm.wechat.client import get_client

    now = timezone.now()
    remote = get_client().notice_templates()
    known = {t.template_id: t for t in NoticeTemplate.objects.select_for_update()}
    created = updated = 0
    for item in remote:
        values = {"title": item.title[:200], "content": item.content, "example": item.example,
                  "kind": item.type if item.type in NoticeTemplate.Kind.values else NoticeTemplate.Kind.ONE_TIME,
                  "keywords": _keywords(item.keywords), "on_wechat": True, "synced_at": now}  # fmt: skip
        template = known.get(item.template_id)
        if template is None:
            NoticeTemplate.objects.create(template_id=item.template_id, **values)
            created += 1
        else:
            for name, value in values.items():
                setattr(template, name, value)
            template.save(update_fields=list(values))
            updated += 1
    gone = (
        NoticeTemplate.objects.filter(on_wechat=True)
        .exclude(template_id__in=[i.template_id for i in remote])
        .update(on_wechat=False, synced_at=now)
    )
    return {"created": created, "updated": updated, "gone": gone}


def notice_template_add(*, tid: str, kid_list: Sequence[int], scene_desc: str) -> NoticeTemplate:
    """Add a title of WeChat's public library to the account with the chosen keywords (2 to 5, in order) and its
    service scene (at most 15 characters), then sync: returns the new template."""
    from wechat_crm.wechat.client import get_client

    errors: dict[str, list[str]] = {}
    if not str(tid).strip():
        errors["tid"] = [_("Choose a title of the library.")]
    try:
        kids = [int(k) for k in kid_list]
    except (TypeError, ValueError):
        kids = []
    if not NOTICE_KEYWORDS_MIN <= len(kids) <= NOTICE_KEYWORDS_MAX or len(set(kids)) != len(kids):
        bounds = {"min": NOTICE_KEYWORDS_MIN, "max": NOTICE_KEYWORDS_MAX}
        errors["kid_list"] = [_("Choose %(min)d to %(max)d different keywords.") % bounds]
    if len(scene_desc or "") > NOTICE_SCENE_DESC_MAX:
        errors["scene_desc"] = [_("At most %(n)d characters.") % {"n": NOTICE_SCENE_DESC_MAX}]
    if errors:
        raise NoticeInvalid(errors)
    try:
        template_id = get_client().notice_template_add(tid=str(tid).strip(), kid_list=kids, scene_desc=scene_desc or "")
    except WeChatArgumentInvalid as exc:  # an unknown title, keywords it does not have: the field WeChat refused
        raise NoticeInvalid({exc.field or "tid": [exc.message]}) from exc
    notice_templates_sync()
    template = NoticeTemplate.objects.filter(template_id=template_id).first()
    if template is None:  # WeChat answered an id its list does not show (yet): keep what we know
        template = NoticeTemplate.objects.create(template_id=template_id, title=str(tid))
    NoticeTemplate.objects.filter(pk=template.pk).update(library_tid=str(tid).strip(), scene_desc=scene_desc or "")
    template.refresh_from_db()
    return template


def notice_template_delete(*, template: NoticeTemplate) -> None:
    """Delete the template on WeChat (already gone there: fine); here it is kept, marked not on WeChat, while a push
    or a journey step names it."""
    from wechat_crm.wechat.client import get_client

    with contextlib.suppress(WeChatTemplateInvalid):  # WeChat no longer has it: nothing left to delete there
        get_client().notice_template_delete(template_id=template.template_id)
    try:
        with transaction.atomic():
            template.delete()
    except ProtectedError:
        NoticeTemplate.objects.filter(pk=template.pk).update(on_wechat=False)


def notice_library(*, start: int = 0, limit: int = 30) -> dict[str, Any]:
    """A page of WeChat's public library in the account's categories: {"categories", "count", "titles"}."""
    from wechat_crm.wechat.client import get_client

    client = get_client()
    categories = client.notice_categories()
    page = client.notice_library_titles(category_ids=[c for c, _n in categories] or [0], start=start, limit=limit)
    return {
        "categories": [{"id": c, "name": n} for c, n in categories],
        "count": page.count,
        "titles": [{"tid": t.tid, "title": t.title, "type": t.type, "category_id": t.category_id} for t in page.titles],
    }


def notice_library_keywords(*, tid: str) -> list[dict[str, Any]]:
    from wechat_crm.wechat.client import get_client

    try:
        keywords = get_client().notice_library_keywords(tid=tid)
    except WeChatArgumentInvalid as exc:
        raise NoticeInvalid({exc.field or "tid": [exc.message]}) from exc
    return [{"kid": k.kid, "name": k.name, "example": k.example, "rule": k.rule} for k in keywords]


# --- consent -------------------------------------------------------------------------------------------------------


class ConsentDecision(NamedTuple):
    """One item of a popup or change event: who decided what about which template, when."""

    subscriber_id: int
    template_id: str
    decision: str  # NoticeConsentChange.Decision
    at: dt.datetime
    popup_scene: str = ""
    interaction_id: int | None = None


def notice_consents_record(*, decisions: Sequence[ConsentDecision]) -> int:
    """Record people's decisions (oldest first): each is added to the history once (per event and template), and
    moves the current consent unless a later decision is recorded already. An acceptance allows one more notice of
    a one-time template; a rejection or withdrawal allows none. Returns how many decisions were new."""
    new = 0
    for d in sorted(decisions, key=lambda d: d.at):
        with transaction.atomic():
            try:
                with transaction.atomic():
                    NoticeConsentChange.objects.create(
                        subscriber_id=d.subscriber_id, template_id=d.template_id, decision=d.decision, at=d.at,
                        popup_scene=d.popup_scene[:16], interaction_id=d.interaction_id,
                    )  # fmt: skip
            except IntegrityError:  # this event's follow-up ran before
                continue
            new += 1
            consent, created = NoticeConsent.objects.select_for_update().get_or_create(
                subscriber_id=d.subscriber_id, template_id=d.template_id, defaults={"changed_at": d.at}
            )
            if not created and consent.changed_at > d.at:
                continue  # a later decision is recorded already
            if d.decision == Decision.ACCEPT:
                consent.accepted, consent.credits = True, consent.credits + 1
            else:
                consent.accepted, consent.credits = False, 0
            consent.changed_at = d.at
            consent.save(update_fields=["accepted", "credits", "changed_at"])
    return new


def _allowed(template: NoticeTemplate) -> Q:
    if template.kind == NoticeTemplate.Kind.LONG_TERM:
        return Q(accepted=True)
    return Q(accepted=True, credits__gt=0)


def notice_consented(*, subscriber_id: int, template: NoticeTemplate) -> bool:
    """Whether the person's recorded consent allows one more notice of this template now."""
    return bool(notice_consented_ids(subscriber_ids=[subscriber_id], template=template))


def notice_consents_allowing(*, template: NoticeTemplate) -> QuerySet[NoticeConsent]:
    """The recorded consents that allow one more notice of this template (the consent rule's one definition: by id
    for a page of recipients, as a subquery when a push's recipients are written)."""
    return NoticeConsent.objects.filter(_allowed(template), template_id=template.template_id).order_by()


def notice_consented_ids(*, subscriber_ids: Iterable[int], template: NoticeTemplate) -> set[int]:
    """Of these people, those whose recorded consent allows one more notice of this template (one query)."""
    ids = list(subscriber_ids)
    if not ids:
        return set()
    allowing = notice_consents_allowing(template=template).values("subscriber_id")  # one per person and template
    return {row["subscriber_id"] for row in rows_by_id(allowing, field="subscriber_id", ids=ids)}


def notice_credits_use(*, subscriber_ids: Iterable[int], template: NoticeTemplate) -> int:
    """Notices WeChat accepted: each uses one acceptance of a one-time template (one statement)."""
    ids = list(subscriber_ids)
    if not ids or template.kind == NoticeTemplate.Kind.LONG_TERM:
        return 0
    rows = NoticeConsent.objects.filter(AnyOf("subscriber_id", ids), template_id=template.template_id, credits__gt=0)
    return rows.update(credits=F("credits") - 1)


def notice_refused(*, subscriber_ids: Iterable[int], template: NoticeTemplate) -> int:
    """WeChat answered 43101 (not accepted): nothing is left to use for these people."""
    ids = list(subscriber_ids)
    if not ids:
        return 0
    changes: dict[str, Any] = {"credits": 0}
    if template.kind == NoticeTemplate.Kind.LONG_TERM:
        changes["accepted"] = False
    return NoticeConsent.objects.filter(AnyOf("subscriber_id", ids), template_id=template.template_id).update(**changes)
