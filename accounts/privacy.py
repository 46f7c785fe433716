"""Personal-data rights (PIPL): export everything held about one subscriber, and erase a subscriber.

`subscriber_export` gathers the profile, tags and preferences, and every row that points at the subscriber (follow
events, interactions, deliveries, channel touches, conversions, clicks ...: found through the model's relations, so
a new model that points at Subscriber is exported without a change here).

`subscriber_erase` keeps the row (reports keep their counts) but nothing that identifies the person:
  - the openid becomes a random marker ("erased:<32 hex>", unrelated to the openid, so it cannot be reversed or
    linked), the unionid and every profile field are cleared, tags and preferences removed;
  - is_following is false and pushes are paused: segments only select followers, so no push reaches the row again,
    and the push pipeline skips it; queued deliveries are skipped with the reason "erased";
  - interactions are anonymised: content, raw XML, data and every free-text field are cleared, the dedupe key
    (which holds the openid) is replaced; the kind and the times stay for statistics.
Both are recorded in the audit log (wechat_crm.models.AuditLog) with who and when.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Value
from django.db.models.functions import Cast, Concat
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
    for rel in Subscriber._meta.related_objects:
        if rel.many_to_many or rel.related_model is Subscriber:
            continue
        name = rel.get_accessor_name()
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
    from content.models import Delivery

    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    already = subscriber_is_erased(subscriber)
    now = timezone.now()
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
    skipped = Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.SKIPPED, reason="erased", finished_at=now
    )
    audit(
        actor=by,
        action=AuditLog.Action.SUBSCRIBER_ERASE,
        target=subscriber,
        via=via,
        details={"interactions_anonymised": anonymised, "deliveries_skipped": skipped, "again": already},
    )
    return subscriber
