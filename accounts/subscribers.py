"""Services for what operators and integrations change on a subscriber: remark, tags, custom attributes and
preferences (the API's PATCH and bulk tagging; the admin's subscriber page edits the same fields).

A changed remark is also set on WeChat (by `subscriber_remark_push`, in a task), so the team
sees the same name in WeChat's own back office.

Tags change through accounts.tagging (`tag_add` / `tag_remove`): local memberships, which the tag sync pushes to
WeChat for linked tags (the local membership wins), as for tags set in the admin.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from wechat_crm.exceptions import ApplicationError

from . import tagging
from .models import Subscriber, Tag

# WeChat refuses a remark of more than 30 bytes of UTF-8 (10 Chinese characters).
REMARK_MAX_BYTES = 30
ATTRIBUTES_MAX_KEYS = 100
ATTRIBUTES_MAX_BYTES = 16 * 1024
ATTRIBUTE_KEY_MAX = 64
BULK_MAX = 10_000
UNSET: Any = object()


def _field_error(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, {"fields": {field: [message]}})


def tags_by_name(names: Iterable[str], *, field: str = "tags") -> list[Tag]:
    """The tags with these names, or an error naming the unknown ones."""
    wanted = list(dict.fromkeys(n.strip() for n in names))
    found = {t.name: t for t in Tag.objects.filter(name__in=wanted)}
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise _field_error(
            field, _("Unknown tag(s): %(names)s. Create them first (/api/tags/).") % {"names": ", ".join(unknown)}
        )
    return [found[n] for n in wanted]


def attributes_merged(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch of the custom attributes: a key set to null is removed, the others are set."""
    merged = dict(current or {})
    for key, value in changes.items():
        if not isinstance(key, str) or not key.strip() or len(key) > ATTRIBUTE_KEY_MAX:
            raise _field_error(
                "attributes", _("Attribute names are 1 to %(max)d characters.") % {"max": ATTRIBUTE_KEY_MAX}
            )
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > ATTRIBUTES_MAX_KEYS:
        raise _field_error("attributes", _("At most %(max)d attributes.") % {"max": ATTRIBUTES_MAX_KEYS})
    if len(json.dumps(merged, ensure_ascii=False).encode()) > ATTRIBUTES_MAX_BYTES:
        raise _field_error("attributes", _("The attributes take at most 16 KB."))
    return merged


@transaction.atomic
def subscriber_update(
    *,
    subscriber: Subscriber,
    remark: str | None = None,
    tags: Iterable[str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    topics_preferred: Iterable[Any] | None = None,
    topics_opted_out: Iterable[Any] | None = None,
    max_pushes_per_week: Any = UNSET,
    pushes_paused: bool | None = None,
) -> Subscriber:
    """Change what is given; None (UNSET for `max_pushes_per_week`, whose None means the default) leaves a field
    alone: the remark, the tags (the whole set, by name), the custom attributes (merged; null removes a key), the
    preferred and opted-out topics (whole sets) and the push preferences. The row is locked while it changes, and
    only the changed columns are written."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    fields: list[str] = []
    if remark is not None and remark.strip() != subscriber.remark:
        subscriber.remark = remark.strip()
        if len(subscriber.remark.encode("utf-8")) > REMARK_MAX_BYTES:
            raise _field_error(
                "remark",
                _("WeChat takes a remark of at most %(max)d bytes (10 Chinese or 30 Latin characters).")
                % {"max": REMARK_MAX_BYTES},
            )
        fields.append("remark")
        subscriber_id = subscriber.pk
        transaction.on_commit(lambda: _remark_push_enqueue(subscriber_id))
    if attributes is not None:
        subscriber.attributes = attributes_merged(subscriber.attributes, attributes)
        fields.append("attributes")
    if max_pushes_per_week is not UNSET:
        subscriber.max_pushes_per_week = max_pushes_per_week
        fields.append("max_pushes_per_week")
    if pushes_paused is not None:
        subscriber.pushes_paused = pushes_paused
        fields.append("pushes_paused")
    if fields:
        subscriber.updated_at = timezone.now()
        subscriber.save(update_fields=[*fields, "updated_at"])
    if tags is not None:
        wanted = {t.pk: t for t in tags_by_name(tags)}
        current = set(subscriber.tags.values_list("pk", flat=True))
        for tag_id in current - wanted.keys():
            tagging.tag_remove(subscribers=[subscriber.pk], tag=Tag(pk=tag_id))
        for tag_id in wanted.keys() - current:
            tagging.tag_add(subscribers=[subscriber.pk], tag=wanted[tag_id])
    if topics_preferred is not None:
        subscriber.topics_preferred.set(list(topics_preferred))
    if topics_opted_out is not None:
        subscriber.topics_opted_out.set(list(topics_opted_out))
    return subscriber


def _remark_push_enqueue(subscriber_id: int) -> None:
    from .tasks import remark_push_task

    remark_push_task.delay(subscriber_id)


def subscriber_remark_push(*, subscriber_id: int, client=None) -> bool:
    """Set the subscriber's current remark on WeChat. Sends the current value, so running it twice, or late after a
    second change, leaves WeChat with the latest remark. False when there is nothing to do: the subscriber was
    erased or no longer follows (WeChat keeps no remark for them)."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).only("openid", "remark", "is_following").first()
    if subscriber is None or not subscriber.is_following:
        return False
    if client is None:
        from wechat_crm.wechat.client import get_client

        client = get_client()
    client.user_remark_set(subscriber.openid, subscriber.remark)
    return True


@dataclass
class BulkTagResult:
    tag: str
    action: str
    subscribers: int
    changed: int


@transaction.atomic
def subscribers_tag_bulk(*, tag_name: str, action: str, ids: Iterable[int] = (), openids: Iterable[str] = ()):
    """Tag (`add`) or untag (`remove`) up to 10,000 subscribers given by id and/or openid; unknown ones are an error
    naming them. Returns how many subscribers were named and how many memberships changed."""
    if action not in ("add", "remove"):
        raise _field_error("action", _("`action` is add or remove."))
    (tag,) = tags_by_name([tag_name], field="tag")
    ids, openids = list(dict.fromkeys(ids)), list(dict.fromkeys(openids))
    if not ids and not openids:
        raise _field_error("subscribers", _("Name the subscribers by `subscribers` (ids) or `openids`."))
    if len(ids) + len(openids) > BULK_MAX:
        raise _field_error("subscribers", _("At most %(max)d subscribers at a time.") % {"max": BULK_MAX})
    found = dict(Subscriber.objects.filter(pk__in=ids).values_list("pk", "pk"))
    by_openid = dict(Subscriber.objects.filter(openid__in=openids).values_list("openid", "pk"))
    missing_ids = [i for i in ids if i not in found]
    missing_openids = [o for o in openids if o not in by_openid]
    if missing_ids:
        raise _field_error(
            "subscribers", _("No subscriber with id %(ids)s.") % {"ids": ", ".join(map(str, missing_ids[:20]))}
        )
    if missing_openids:
        raise _field_error(
            "openids", _("No subscriber with openid %(ids)s.") % {"ids": ", ".join(missing_openids[:20])}
        )
    targets = sorted(set(found) | set(by_openid.values()))
    through = Subscriber.tags.through
    before = through.objects.filter(tag_id=tag.pk, subscriber_id__in=targets).count()
    if action == "add":
        tagging.tag_add(subscribers=targets, tag=tag)
        changed = len(targets) - before
    else:
        changed = tagging.tag_remove(subscribers=targets, tag=tag)
    return BulkTagResult(tag=tag.name, action=action, subscribers=len(targets), changed=changed)
