"""Services for tags: local tags on subscribers, optionally mirrored by WeChat tags and synced both ways.

* `tag_add` / `tag_remove` change local memberships (one statement each).
* Pull (`tags_pull_from_wechat`): WeChat's tags (the client's tags_list) become local tags (matched by WeChat
  id, then by name), and WeChat's members of each tag (pages of tag_members_page) are added locally. Pull only adds.
* Push (`tags_push_to_wechat`): local tags missing on WeChat are created there (tag_create), then WeChat's
  members of each linked tag are made equal to the local following members: tag_users / untag_users in
  batches of 50 (WeChat's limit). For a linked tag the local membership therefore wins.
* `tags_sync(direction="both")` pulls, then pushes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from wechat_crm.exceptions import ApplicationError
from wechat_crm.wechat.errors import WeChatPermanent

from .models import Subscriber, Tag

logger = logging.getLogger(__name__)

MEMBERS_BATCH = 50  # WeChat's limit for one tagging or untagging call
TAG_NAME_EXISTS = 45157


def _client():
    from wechat_crm.wechat.client import get_client

    return get_client()


def _subscriber_ids(subscribers: Iterable[Subscriber] | models.QuerySet | Iterable[int]) -> list[int]:
    if isinstance(subscribers, models.QuerySet):
        return list(subscribers.values_list("id", flat=True))
    return [s if isinstance(s, int) else s.pk for s in subscribers]


def tag_create(*, name: str) -> Tag:
    name = _name_checked(name)
    try:
        with transaction.atomic():
            return Tag.objects.create(name=name)
    except IntegrityError as exc:
        message = str(_("A tag with this name exists already."))
        raise ApplicationError(message, {"fields": {"name": [message]}}) from exc


def _name_checked(name: str) -> str:
    name = name.strip()
    if not name:
        raise ApplicationError(str(_("A tag needs a name.")), {"fields": {"name": [str(_("A tag needs a name."))]}})
    if len(name.encode()) > 30:
        message = str(_("A tag name has at most 30 bytes (10 Chinese characters)."))
        raise ApplicationError(message, {"fields": {"name": [message]}})
    return name


def _wechat_refused(exc: Exception) -> ApplicationError:
    return ApplicationError(
        str(_("WeChat refused: %(error)s")) % {"error": getattr(exc, "errmsg", None) or exc},
        {"errcode": getattr(exc, "errcode", None)},
    )


@transaction.atomic
def tag_rename(*, tag: Tag, name: str, client=None) -> Tag:
    """Rename the tag; a tag linked to WeChat is renamed there too (the client's tag_rename) before the local row
    changes."""
    from wechat_crm.wechat.errors import WeChatError

    name = _name_checked(name)
    if name == tag.name:
        return tag
    if Tag.objects.filter(name=name).exclude(pk=tag.pk).exists():
        message = str(_("A tag with this name exists already."))
        raise ApplicationError(message, {"fields": {"name": [message]}})
    if tag.wechat_tag_id is not None:
        try:
            (client or _client()).tag_rename(tag.wechat_tag_id, name)
        except WeChatError as exc:
            raise _wechat_refused(exc) from exc
    tag.name = name
    tag.save(update_fields=["name"])
    return tag


@transaction.atomic
def tag_delete(*, tag: Tag, client=None) -> None:
    """Delete the tag and its memberships; a tag linked to WeChat is deleted there too (the client's tag_delete)."""
    from wechat_crm.wechat.errors import WeChatError

    if tag.wechat_tag_id is not None:
        try:
            (client or _client()).tag_delete(tag.wechat_tag_id)
        except WeChatError as exc:
            raise _wechat_refused(exc) from exc
    tag.delete()


def tag_add(*, subscribers: Iterable[Subscriber] | models.QuerySet | Iterable[int], tag: Tag) -> int:
    """Tag the subscribers (ids or rows or a queryset); already tagged ones are left alone. Returns how many."""
    through = Subscriber.tags.through
    ids = _subscriber_ids(subscribers)
    through.objects.bulk_create([through(subscriber_id=i, tag_id=tag.pk) for i in ids], ignore_conflicts=True)
    return len(ids)


def tag_remove(*, subscribers: Iterable[Subscriber] | models.QuerySet | Iterable[int], tag: Tag) -> int:
    """Untag the subscribers. Returns how many memberships were removed."""
    deleted, _by_model = Subscriber.tags.through.objects.filter(
        tag_id=tag.pk, subscriber_id__in=_subscriber_ids(subscribers)
    ).delete()
    return deleted


def tags_link_wechat(remote: Iterable[dict[str, Any]]) -> dict[int, int]:
    """Local tags for WeChat's tags ({"id", "name"}): linked by WeChat id, else by name, else created.
    Returns {WeChat tag id: local tag id}."""
    now = timezone.now()
    result: dict[int, int] = {}
    for item in remote:
        wechat_id, name = int(item["id"]), str(item.get("name") or "")[:30]
        tag = Tag.objects.filter(wechat_tag_id=wechat_id).first()
        if tag is None:
            tag = Tag.objects.filter(name=name, wechat_tag_id__isnull=True).first()
            if tag is not None:
                tag.wechat_tag_id = wechat_id
                tag.synced_at = now
                tag.save(update_fields=["wechat_tag_id", "synced_at"])
            else:
                taken = Tag.objects.filter(name=name).exists()  # linked to another WeChat tag: keep both apart
                tag, _created = Tag.objects.get_or_create(
                    wechat_tag_id=wechat_id,
                    defaults={"name": f"{name} ({wechat_id})" if taken else name, "synced_at": now},
                )
        result[wechat_id] = tag.pk
    return result


@dataclass
class TagSyncResult:
    tags_created_locally: int = 0
    tags_created_on_wechat: int = 0
    members_added_locally: int = 0
    members_tagged_on_wechat: int = 0
    members_untagged_on_wechat: int = 0


def _wechat_members(client, wechat_tag_id: int) -> set[str]:
    members: set[str] = set()
    next_openid = ""
    while True:
        page = client.tag_members_page(wechat_tag_id, next_openid)
        members.update(page.openids)
        next_openid = page.next_openid
        if not page.openids or not next_openid:
            return members


def tags_pull_from_wechat(*, client=None, result: TagSyncResult | None = None) -> TagSyncResult:
    """WeChat's tags and their members into local tags (adds only)."""
    client = client or _client()
    result = result or TagSyncResult()
    remote = client.tags_list()
    before = Tag.objects.count()
    links = tags_link_wechat(remote)
    result.tags_created_locally += Tag.objects.count() - before
    through = Subscriber.tags.through
    for wechat_id, tag_id in links.items():
        openids = _wechat_members(client, wechat_id)
        ids = list(Subscriber.objects.filter(openid__in=openids).values_list("id", flat=True)) if openids else []
        already = set(
            through.objects.filter(tag_id=tag_id, subscriber_id__in=ids).values_list("subscriber_id", flat=True)
        )
        new = [through(subscriber_id=i, tag_id=tag_id) for i in ids if i not in already]
        through.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        result.members_added_locally += len(new)
        Tag.objects.filter(pk=tag_id).update(synced_at=timezone.now())
    return result


def _tag_create_on_wechat(client, tag: Tag) -> int:
    try:
        return client.tag_create(tag.name)
    except WeChatPermanent as exc:
        if exc.errcode != TAG_NAME_EXISTS:
            raise
    for item in client.tags_list():  # the name exists on WeChat already: link to it
        if item.get("name") == tag.name:
            return int(item["id"])
    raise ApplicationError(str(_("WeChat refused the tag name %(name)s.")) % {"name": tag.name})


def tags_push_to_wechat(
    *, client=None, tags: Iterable[Tag] | None = None, result: TagSyncResult | None = None
) -> TagSyncResult:
    """Create local tags on WeChat and make WeChat's members of each linked tag equal to the local followers."""
    client = client or _client()
    result = result or TagSyncResult()
    for tag in list(tags if tags is not None else Tag.objects.all()):
        if tag.wechat_tag_id is None:
            tag.wechat_tag_id = _tag_create_on_wechat(client, tag)
            tag.save(update_fields=["wechat_tag_id"])
            result.tags_created_on_wechat += 1
        local = set(tag.subscribers.filter(is_following=True).values_list("openid", flat=True))
        remote = _wechat_members(client, tag.wechat_tag_id)
        to_tag, to_untag = sorted(local - remote), sorted(remote - local)
        for start in range(0, len(to_tag), MEMBERS_BATCH):
            client.tag_users(tag.wechat_tag_id, to_tag[start : start + MEMBERS_BATCH])
        for start in range(0, len(to_untag), MEMBERS_BATCH):
            client.untag_users(tag.wechat_tag_id, to_untag[start : start + MEMBERS_BATCH])
        result.members_tagged_on_wechat += len(to_tag)
        result.members_untagged_on_wechat += len(to_untag)
        tag.synced_at = timezone.now()
        tag.save(update_fields=["synced_at"])
    return result


SYNC_DIRECTIONS = ("pull", "push", "both")


def tags_sync(*, direction: str = "both", client=None) -> TagSyncResult:
    if direction not in SYNC_DIRECTIONS:
        raise ApplicationError(str(_("Unknown sync direction %(direction)s.")) % {"direction": direction})
    client = client or _client()
    result = TagSyncResult()
    if direction in ("pull", "both"):
        tags_pull_from_wechat(client=client, result=result)
    if direction in ("push", "both"):
        tags_push_to_wechat(client=client, result=result)
    return result
