"""Personal-data rights (PIPL): export everything held about one subscriber, and erase a subscriber.

`subscriber_export` gathers the profile, tags and preferences, and every row that points at the subscriber (follow
events, interactions, deliveries, channel touches, conversions, clicks ...: found through the model's relations, so
a new model that points at Subscriber is exported without a change here).

`subscriber_erase` keeps the row (reports keep their counts) but nothing that identifies the person, in any table:
  - the openid becomes a random marker ("erased:<32 hex>", unrelated to the openid, so it cannot be reversed or
    linked), the unionid and every profile field are cleared, tags and preferences removed;
  - is_following is false and pushes are paused: segments only select followers, so no push reaches the row again,
    and the push pipeline skips it; queued deliveries are skipped and queued messages fail with the reason "erased";
    active journey enrollments stop;
  - interactions are anonymised: content, raw XML, data and every free-text field are cleared, the dedupe key
    (which holds the openid) is replaced; the kind and the times stay for statistics;
  - every other row that points at the subscriber (outbound messages and their payloads, deliveries, conversions,
    notifications, journey enrollments, score entries, follow events, channel touches ...: found through the model's
    relations, so a new model is covered without a change here) loses its free text (every text and JSON column)
    and any mention of the openid, unionid, nickname or remark in its other text columns;
  - every table of our apps (and the admin's change log) loses any mention of the openid or unionid;
  - the link-click markers of the cache are deleted; a later report event about the old openid (a late
    TEMPLATESENDJOBFINISH) finds no subscriber and is not stored (accounts.services.interaction_record_report).
Both are recorded in the audit log (wechat_crm.models.AuditLog) with who and when.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import F, Value
from django.db.models.functions import Cast, Concat, Replace
from django.utils import timezone

from wechat_crm.models import AuditLog, audit

from .models import Interaction, Subscriber

ERASED_PREFIX = "erased:"
_PROFILE_BLANK = {
    "nickname": "",
    "remark": "",
    "language": "",
    "sex": Subscriber.Sex.UNKNOWN,
    "city": "",
    "province": "",
    "country": "",
    "headimgurl": "",
    "subscribe_scene": "",
    "qr_scene_str": "",
    "source_scene": "",
    "unionid": None,
    "attributes": {},
}
_INTERACTION_BLANK = {
    "content": "",
    "raw_xml": "",
    "data": {},
    "reply": "",
    "event_key": "",
    "scene": "",
    "media_id": "",
    "thumb_media_id": "",
    "pic_url": "",
    "title": "",
    "description": "",
    "url": "",
    "label": "",
    "ticket": "",
    "latitude": None,
    "longitude": None,
    "precision": None,
    "scale": None,
}


def _relations() -> list:
    """Every relation that points at Subscriber, hidden ones (related_name="+") included."""
    return [
        f
        for f in Subscriber._meta.get_fields(include_hidden=True)
        if f.auto_created and not f.concrete and (f.one_to_many or f.one_to_one)
    ]


def subscriber_is_erased(subscriber: Subscriber) -> bool:
    return subscriber.openid.startswith(ERASED_PREFIX)


def subscriber_export_data(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything held about one subscriber, as JSON-ready values."""
    profile = {
        f.name: getattr(subscriber, f.attname)
        for f in Subscriber._meta.concrete_fields
        if f.name not in ("profile_claimed_until",)
    }
    data: dict[str, Any] = {"exported_at": timezone.now(), "profile": profile}
    for m2m in Subscriber._meta.many_to_many:
        data[m2m.name] = [str(o) for o in getattr(subscriber, m2m.name).all()]
    for rel in _relations():
        if rel.many_to_many or rel.related_model is Subscriber:
            continue
        name = rel.get_accessor_name() if not rel.hidden else rel.related_model._meta.model_name + "s"
        qs = rel.related_model._default_manager.filter(**{rel.field.name: subscriber}).order_by("pk")
        rows = list(qs.values())
        if rel.one_to_one:
            data[name] = rows[0] if rows else None
        else:
            data[name] = rows
    return _jsonable(data)


def _jsonable(data: Any) -> Any:
    import json

    return json.loads(json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False))


def subscriber_export(*, subscriber: Subscriber, by: Any, via: str = "") -> dict[str, Any]:
    """The export, recorded in the audit log."""
    data = subscriber_export_data(subscriber=subscriber)
    audit(actor=by, action=AuditLog.Action.SUBSCRIBER_EXPORT, target=subscriber, via=via)
    return data


@transaction.atomic
def subscriber_erase(*, subscriber: Subscriber, by: Any, via: str = "") -> Subscriber:
    """Erase a subscriber (see the module's docstring). Erasing an erased subscriber again changes nothing more."""
    from content.services.deliveries.tallies import deliveries_queued_skip

    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    already = subscriber_is_erased(subscriber)
    now = timezone.now()
    # What identifies the person, to be found and removed wherever it was copied.
    identifiers = [v for v in (subscriber.openid, subscriber.unionid) if v and not v.startswith(ERASED_PREFIX)]
    names = [v for v in (subscriber.nickname, subscriber.remark) if v and len(v) >= 2]
    link_markers = _link_click_markers(subscriber)
    if not already:
        subscriber.openid = ERASED_PREFIX + secrets.token_hex(16)
    for name, value in _PROFILE_BLANK.items():
        setattr(subscriber, name, value)
    subscriber.is_following = False
    subscriber.pushes_paused = True
    subscriber.unsubscribed_at = subscriber.unsubscribed_at or now
    subscriber.save(update_fields=["openid", *_PROFILE_BLANK, "is_following", "pushes_paused", "unsubscribed_at",
                                   "updated_at"])  # fmt: skip
    subscriber.tags.clear()
    subscriber.topics_opted_out.clear()
    subscriber.topics_preferred.clear()
    anonymised = Interaction.objects.filter(subscriber=subscriber).update(
        **_INTERACTION_BLANK,
        dedupe_key=Concat(Value(ERASED_PREFIX), Cast("id", models.CharField()), output_field=models.CharField()),
    )
    skipped = deliveries_queued_skip(subscriber_id=subscriber.pk, reason="erased", at=now)
    cancelled = _pending_messages_cancel(subscriber, now=now)
    cleared = _related_rows_clear(subscriber, identifiers=identifiers, names=names)
    scrubbed = _mentions_scrub(identifiers, replacement=subscriber.openid)
    _cache_clear(link_markers)
    audit(
        actor=by,
        action=AuditLog.Action.SUBSCRIBER_ERASE,
        target=subscriber,
        via=via,
        details={
            "interactions_anonymised": anonymised,
            "deliveries_skipped": skipped,
            "messages_cancelled": cancelled,
            "related_rows_cleared": cleared,
            "mentions_scrubbed": scrubbed,
            "again": already,
        },
    )
    return subscriber


def _pending_messages_cancel(subscriber: Subscriber, *, now) -> int:
    """Queued messages never leave and active journeys stop: the apps that hold them do it on `subscriber_erased`
    (accounts imports none of the apps built on it)."""
    from .signals import subscriber_erased

    results = subscriber_erased.send(sender=Subscriber, subscriber=subscriber, at=now)
    return sum(r for _receiver, r in results if isinstance(r, int))


def _is_text(field: models.Field) -> bool:
    return isinstance(field, models.CharField | models.TextField) and not field.primary_key and not field.choices


def _blank(field: models.Field) -> Any:
    if isinstance(field, models.JSONField):
        return field.get_default() if field.has_default() else {}
    return None if field.null else ""


def _related_rows_clear(subscriber: Subscriber, *, identifiers: list[str], names: list[str]) -> int:
    """Every row that points at the subscriber: text and JSON columns (free text) blanked, and the person's
    identifiers and names removed from its other text columns (codes and choices stay)."""
    cleared = 0
    mentions = [*identifiers, *names]
    for rel in _relations():
        model = rel.related_model
        if rel.many_to_many or model is Subscriber or model is Interaction or not rel.field.concrete:
            continue
        rows = model._default_manager.filter(**{rel.field.name: subscriber})
        changes: dict[str, Any] = {}
        for field in model._meta.concrete_fields:
            if field.primary_key or field.is_relation or getattr(field, "generated", False):
                continue
            if isinstance(field, models.JSONField | models.TextField):
                changes[field.attname] = _blank(field)
            elif _is_text(field):
                # Identifiers anywhere; names only in columns long enough to hold free text (not in codes).
                found = [m for m in mentions if m in identifiers or (field.max_length or 0) > 32]
                expression = F(field.attname)
                for mention in found:
                    expression = Replace(expression, Value(mention), Value(""))
                if found:
                    changes[field.attname] = expression
        if changes:
            cleared += rows.update(**changes)
    return cleared


def _scrubbed_models() -> list[type[models.Model]]:
    """Our apps' models and the admin's change log (its object_repr may be an openid)."""
    from wechat_crm.permissions import PROJECT_APPS

    labels = (*PROJECT_APPS, "admin")
    return [
        m
        for m in apps.get_models()
        if m._meta.app_label in labels and m is not Subscriber and not m._meta.proxy and m._meta.managed
    ]


def _mentions_scrub(identifiers: list[str], *, replacement: str) -> int:
    """Replace the openid and unionid in every text and JSON column of every table of ours. Rows that point at the
    subscriber were cleared already; this finds copies elsewhere (operator profiles, follower-import cursors, the
    admin's log, mass-send batches ...). Interactions and deliveries, the big tables, hold another person's rows only
    (theirs were cleared through the relation), so they are skipped."""
    from content.models import Delivery

    scrubbed = 0
    for model in _scrubbed_models():
        if model in (Interaction, Delivery):
            continue
        for field in model._meta.concrete_fields:
            if field.primary_key or field.is_relation or getattr(field, "generated", False):
                continue
            is_json = isinstance(field, models.JSONField)
            if not (is_json or isinstance(field, models.CharField | models.TextField)):
                continue
            for identifier in identifiers:
                scrubbed += _scrub_column(model, field, identifier, replacement, is_json=is_json)
    return scrubbed


def _scrub_column(model, field: models.Field, old: str, new: str, *, is_json: bool) -> int:
    name = field.attname
    if not is_json:
        rows = model._default_manager.filter(**{f"{name}__contains": old})
        return rows.update(**{name: Replace(F(name), Value(old), Value(new))})
    rows = model._default_manager.annotate(_as_text=Cast(name, models.TextField())).filter(_as_text__contains=old)
    count = 0
    for obj in rows.only("pk", name):
        value = getattr(obj, name)
        replaced = _jsonable(json.loads(json.dumps(value, cls=DjangoJSONEncoder).replace(old, new)))
        model._default_manager.filter(pk=obj.pk).update(**{name: replaced})
        count += 1
    return count


def _link_click_markers(subscriber: Subscriber) -> list[str]:
    """The cache keys that stop repeated clicks (content.services.link_click_record) of this subscriber's links."""
    pairs = (
        Interaction.objects.filter(subscriber=subscriber, kind=Interaction.Kind.LINK_CLICK)
        .values_list("data__link_id", "data__push_id")
        .distinct()
    )
    return [f"link_click:{subscriber.pk}:{link}:{push or 0}" for link, push in pairs]


def _cache_clear(keys: list[str]) -> None:
    from django.core.cache import cache

    if not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception:  # the cache is down: the markers expire within minutes anyway, and hold only ids
        return
