"""Articles as WeChat drafts (added, then updated article by article), with their covers and body images uploaded first.

Everything WeChat would refuse is checked before the first call (covers, body tags, foreign images, lengths), so a
refusal never leaves half an upload behind. An uploaded draft is updated article by article when an article
changes (each article's fingerprint), and a draft that WeChat consumed (mass-sent or published) is never touched
again: the next change makes a new draft. A draft made for a push belongs to it and is reused on the next try.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from content.models import Article, Push
from wechat_crm.wechat.errors import WeChatError, WeChatMediaGone
from wechat_crm.wechat.messages import DRAFT_MAX_ARTICLES, DraftArticle

from .. import html
from ..errors import ArticleInvalid, WeChatRefused
from ..models import ArticleWeChat, Draft, MediaAsset
from ..models import DraftArticle as DraftItem
from .media import media_for_file, media_name_of, media_upload

TEXT_LIMITS = (("title", 64), ("author", 16), ("digest", 128))
OPEN = (Draft.Status.NEW, Draft.Status.UPLOADED)


def _settings(article: Article) -> ArticleWeChat:
    return ArticleWeChat.objects.select_related("cover").filter(article=article).first() or ArticleWeChat(
        article=article
    )


def _cover(article: Article, options: ArticleWeChat) -> MediaAsset:
    if options.cover_id:
        return options.cover
    if not article.cover:
        raise ArticleInvalid(
            _('"%(title)s" needs a cover image for WeChat: set its cover or a WeChat cover from the media library.')
            % {"title": article.title}
        )
    return media_for_file(name=article.cover.name, kind=MediaAsset.Kind.IMAGE)


def article_check(article: Article) -> tuple[str, dict[str, MediaAsset], MediaAsset]:
    """What WeChat would refuse, before any call: (the body's HTML for WeChat, its body images by source, the
    cover)."""
    for field, limit in TEXT_LIMITS:
        value = getattr(article, field) or ""
        if len(value) > limit:
            raise ArticleInvalid(
                _('The %(field)s of "%(title)s" has %(count)s characters; WeChat takes at most %(limit)s.')
                % {"field": field, "title": article.title[:40], "count": len(value), "limit": limit},
                extra={"field": field},
            )
    content, sources = html.convert(
        article.body, media_url=settings.MEDIA_URL, public_base_url=settings.PUBLIC_BASE_URL
    )
    if not content.strip():
        raise ArticleInvalid(_('"%(title)s" has no body.') % {"title": article.title})
    images = {src: media_for_file(name=media_name_of(src), kind=MediaAsset.Kind.BODY) for src in sources}
    cover = _cover(article, _settings(article))
    return content, images, cover


def _upload(article: Article) -> DraftArticle:
    """Upload what the article needs (cover, body images) and build its draft article."""
    content, images, cover = article_check(article)
    urls = {src: media_upload(asset=asset).wechat_url for src, asset in images.items()}
    options = _settings(article)
    return DraftArticle(
        title=article.title,
        content=html.images_replace(content, urls),
        thumb_media_id=media_upload(asset=cover).media_id,
        author=article.author,
        digest=article.digest,
        content_source_url=options.content_source_url,
        need_open_comment=options.need_open_comment,
        only_fans_can_comment=options.only_fans_can_comment,
    )


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@transaction.atomic
def draft_create(*, articles: Sequence[Article], push: Push | None = None) -> Draft:
    """A new, not yet uploaded draft of 1 to 8 articles (checked now: nothing WeChat refuses is kept)."""
    if not 1 <= len(articles) <= DRAFT_MAX_ARTICLES:
        raise ArticleInvalid(_("A WeChat draft holds 1 to 8 articles."))
    for article in articles:
        article_check(article)
    draft = Draft.objects.create(push=push)
    DraftItem.objects.bulk_create(DraftItem(draft=draft, article=a, position=i) for i, a in enumerate(articles))
    return draft


def draft_upload(*, draft: Draft) -> Draft:
    """Upload the draft, or bring it up to date (an update of each changed article).

    Raises ArticleInvalid before any call, WeChatRefused with WeChat's message (e.g. a missing permission)."""
    draft = Draft.objects.get(pk=draft.pk)
    if draft.status not in OPEN:
        raise ArticleInvalid(_("This draft was already sent or published; WeChat no longer has it."))
    items = list(draft.items.select_related("article").order_by("position"))
    for item in items:
        article_check(item.article)  # every article first: a refusal leaves nothing half uploaded
    from wechat_crm.wechat.client import get_client

    client = get_client()
    try:
        built = [_upload(item.article) for item in items]
        prints = [_fingerprint(asdict(b)) for b in built]
        whole = _fingerprint(prints)
        if draft.media_id and whole == draft.fingerprint:
            return draft
        if draft.media_id:
            try:
                for item, article, print_ in zip(items, built, prints, strict=True):
                    if item.fingerprint != print_:
                        client.draft_update(media_id=draft.media_id, index=item.position, article=article)
            except WeChatMediaGone:  # deleted on WeChat's side: added again below
                draft.media_id = ""
        if not draft.media_id:
            draft.media_id = client.draft_add(articles=built)
    except WeChatError as exc:
        raise WeChatRefused(
            _("WeChat refused the draft: %(error)s") % {"error": exc.message}, extra={"errcode": exc.errcode}
        ) from exc
    for item, print_ in zip(items, prints, strict=True):
        DraftItem.objects.filter(pk=item.pk).update(fingerprint=print_)
    draft.status, draft.fingerprint, draft.uploaded_at = Draft.Status.UPLOADED, whole, timezone.now()
    draft.save(update_fields=["media_id", "status", "fingerprint", "uploaded_at", "updated_at"])
    return draft


def draft_for_articles(*, articles: Sequence[Article], push: Push | None = None) -> Draft:
    """The open draft of exactly these articles (of this push, when given), uploaded and up to date; made when
    there is none. A push's draft that WeChat still has is reused, so a failed send never makes a second one."""
    ids = [a.pk for a in articles]
    candidates = Draft.objects.filter(status__in=OPEN, push=push).order_by("-id").prefetch_related("items")
    for draft in candidates:
        if [i.article_id for i in sorted(draft.items.all(), key=lambda i: i.position)] == ids:
            return draft_upload(draft=draft)
    return draft_upload(draft=draft_create(articles=articles, push=push))


def draft_consumed(*, draft: Draft) -> None:
    """WeChat took the draft out of its draft box (mass-sent or published): never update or reuse it again."""
    Draft.objects.filter(pk=draft.pk, status__in=OPEN).update(
        status=Draft.Status.CONSUMED, consumed_at=timezone.now(), updated_at=timezone.now()
    )


def draft_delete(*, draft: Draft) -> Draft:
    """Delete the draft on WeChat and here. A draft WeChat no longer has (40007) counts as deleted;
    a sent or published one is kept as the record of what was sent."""
    from wechat_crm.wechat.client import get_client

    if draft.status == Draft.Status.CONSUMED:
        raise ArticleInvalid(_("A draft that was sent or published is kept as the record of what went out."))
    if draft.media_id:
        try:
            get_client().draft_delete(media_id=draft.media_id)
        except WeChatMediaGone:
            pass
        except WeChatError as exc:
            raise WeChatRefused(_("WeChat refused: %(error)s") % {"error": exc.message}) from exc
    draft.status = Draft.Status.DELETED
    draft.save(update_fields=["status", "updated_at"])
    return draft


def drafts_sync_article(*, article_id: int) -> int:
    """After an edit: every open, uploaded draft with the article is updated on WeChat. Returns how many."""
    done = 0
    for draft in Draft.objects.filter(status=Draft.Status.UPLOADED, items__article_id=article_id).distinct():
        try:
            draft_upload(draft=draft)
            done += 1
        except (ArticleInvalid, WeChatRefused):
            continue  # the article no longer fits WeChat: shown when it is next sent or published
    return done
