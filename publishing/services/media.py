"""The media library: images checked against WeChat's formats and sizes, uploaded as permanent material or as
body images, and the list synced from WeChat's material.

WeChat's limits, checked before any call with a message naming the problem:
  image (covers): JPG, PNG, GIF or BMP, at most 10 MB; thumb: JPG, at most 64 KB; body image: JPG or PNG, at most 1 MB.
"""

from __future__ import annotations

import io
import os
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image, UnidentifiedImageError

from ..errors import MediaInvalid
from ..models import MediaAsset

K = MediaAsset.Kind
LIMITS: dict[str, tuple[frozenset[str], int, str]] = {
    K.IMAGE: (frozenset({"JPEG", "PNG", "GIF", "BMP"}), 10 * 1024 * 1024, "JPG, PNG, GIF, BMP"),
    K.THUMB: (frozenset({"JPEG"}), 64 * 1024, "JPG"),
    K.BODY: (frozenset({"JPEG", "PNG"}), 1024 * 1024, "JPG, PNG"),
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp"}


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def media_check(*, kind: str, data: bytes, name: str = "") -> tuple[str, int, int]:
    """(format, width, height) of an image WeChat accepts for `kind`; MediaInvalid naming what is wrong."""
    formats, limit, label = LIMITS[kind]
    kind_label = K(kind).label
    name = name or _("the image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            fmt, (width, height) = image.format or "", image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise MediaInvalid(_("%(name)s is not an image WeChat can read.") % {"name": name}) from None
    if fmt not in formats:
        raise MediaInvalid(
            _("%(name)s is a %(format)s image; WeChat takes only %(formats)s for %(kind)s.")
            % {"name": name, "format": fmt or "?", "formats": label, "kind": kind_label},
            extra={"format": fmt, "allowed": sorted(formats)},
        )
    if len(data) > limit:
        raise MediaInvalid(
            _("%(name)s is %(size)s; WeChat takes at most %(limit)s for %(kind)s.")
            % {"name": name, "size": _size(len(data)), "limit": _size(limit), "kind": kind_label},
            extra={"size": len(data), "limit": limit},
        )
    return fmt, width, height


def media_create(*, kind: str, data: bytes, filename: str, title: str = "", by: Any = None) -> MediaAsset:
    """A new image of the library, checked against WeChat's limits for its kind before it is stored."""
    fmt, width, height = media_check(kind=kind, data=data, name=filename)
    base = os.path.splitext(os.path.basename(filename))[0][:80] or "image"
    asset = MediaAsset(
        kind=kind, title=title or base, format=fmt, size=len(data), width=width, height=height,
        created_by=by if getattr(by, "pk", None) else None,
    )  # fmt: skip
    asset.file.save(f"{base}.{EXTENSIONS[fmt]}", ContentFile(data), save=False)
    asset.save()
    return asset


def media_upload(*, asset: MediaAsset) -> MediaAsset:
    """Upload the image to WeChat once: permanent material (image, thumb) or a body image (its URL)."""
    from wechat_crm.wechat.client import get_client

    if asset.media_id or (asset.kind == K.BODY and asset.wechat_url):
        return asset
    with asset.file.open("rb") as handle:
        data = handle.read()
    media_check(kind=asset.kind, data=data, name=os.path.basename(asset.file.name))
    client = get_client()
    filename = os.path.basename(asset.file.name)
    if asset.kind == K.BODY:
        asset.wechat_url = client.body_image_upload(filename=filename, content=data)
    else:
        asset.media_id, asset.wechat_url = client.material_add(kind=asset.kind, filename=filename, content=data)
    asset.uploaded_at = timezone.now()
    asset.save(update_fields=["media_id", "wechat_url", "uploaded_at", "updated_at"])
    return asset


def media_for_file(*, name: str, kind: str) -> MediaAsset:
    """The library's row for a stored file (an article's cover, an image under MEDIA_URL), made when missing."""
    asset = MediaAsset.objects.filter(file=name, kind=kind).order_by("id").first()
    if asset is not None:
        return asset
    if not default_storage.exists(name):
        raise MediaInvalid(_("The image %(name)s is not in our media storage.") % {"name": name})
    with default_storage.open(name, "rb") as handle:
        data = handle.read()
    fmt, width, height = media_check(kind=kind, data=data, name=os.path.basename(name))
    asset = MediaAsset(kind=kind, title=os.path.basename(name), format=fmt, size=len(data), width=width, height=height)
    asset.file.name = name
    asset.save()
    return asset


def media_name_of(src: str) -> str:
    """The storage name of a local image source (/media/library/x.png or https://host/media/library/x.png)."""
    path = unquote(urlsplit(src).path)
    prefix = "/" + settings.MEDIA_URL.strip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")


def absolute_url(url: str) -> str:
    """An absolute URL (on PUBLIC_BASE_URL) for a path such as /media/library/x.png; absolute URLs stay."""
    if urlsplit(url).scheme:
        return url
    return settings.PUBLIC_BASE_URL.rstrip("/") + "/" + url.lstrip("/")


def media_sync(*, page_size: int = 20) -> dict[str, int]:
    """Read WeChat's list of permanent images (client.material_page, every page) and counts (client.material_count):
    known media_ids get WeChat's URL, unknown ones are added to the library as found on WeChat."""
    from wechat_crm.wechat.client import get_client

    client = get_client()
    counts = client.material_count()
    offset = added = updated = 0
    while True:
        page = client.material_page(kind="image", offset=offset, count=page_size)
        items = page.get("item") or []
        for item in items:
            media_id, url = str(item.get("media_id") or ""), str(item.get("url") or "")
            if not media_id:
                continue
            if MediaAsset.objects.filter(media_id=media_id).exclude(wechat_url=url).update(wechat_url=url):
                updated += 1
            elif not MediaAsset.objects.filter(media_id=media_id).exists():
                try:
                    with transaction.atomic():
                        MediaAsset.objects.create(
                            kind=K.IMAGE, title=str(item.get("name") or "")[:200], media_id=media_id,
                            wechat_url=url, from_wechat=True, uploaded_at=timezone.now(),
                        )  # fmt: skip
                    added += 1
                except IntegrityError:  # another sync added it meanwhile
                    pass
        offset += len(items)
        if not items or offset >= int(page.get("total_count") or 0):
            break
    return {"image_count": int(counts.get("image_count") or 0), "listed": offset, "added": added, "updated": updated}
