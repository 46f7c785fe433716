"""Publishing (发布) an article on WeChat without a push: its draft submitted for publishing, then the result
from PUBLISHJOBFINISH, or from asking WeChat when the event does not come (publications_poll, every few minutes).

A published article keeps WeChat's article_id and permanent URL (ArticleWeChat): tracked links and templates then
lead there (content.Article.public_url). 48001 (WeChat has withdrawn publishing from unverified accounts) comes
back as a message naming the missing permission.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from content.models import Article
from wechat_crm.wechat.client.publishing import PublishState, publish_state
from wechat_crm.wechat.errors import WeChatError

from ..errors import WeChatRefused
from ..models import ArticleWeChat, Publication
from .drafts import draft_consumed, draft_for_articles


def article_publish(*, article: Article, by: Any = None) -> Publication:
    """Upload the article's draft (reused when one is open) and submit it for publishing."""
    from wechat_crm.wechat.client import get_client

    draft = draft_for_articles(articles=[article])
    try:
        publish_id = get_client().publish_submit(media_id=draft.media_id)
    except WeChatError as exc:
        raise WeChatRefused(
            _("WeChat refused to publish: %(error)s") % {"error": exc.message}, extra={"errcode": exc.errcode}
        ) from exc
    draft_consumed(draft=draft)
    publication, _created = Publication.objects.get_or_create(
        publish_id=publish_id, defaults={"draft": draft, "created_by": by if getattr(by, "pk", None) else None}
    )
    return publication


@transaction.atomic
def publication_apply(*, state: PublishState) -> Publication | None:
    """Record WeChat's result of a publication (the event, or its answer when asked). Idempotent."""
    publication = Publication.objects.select_for_update().filter(publish_id=state.publish_id).first()
    if publication is None or state.pending or publication.status != Publication.Status.PUBLISHING:
        return publication
    now = timezone.now()
    publication.wechat_status = state.status
    publication.article_id = state.article_id
    publication.urls = {str(k): v for k, v in state.urls.items()}
    publication.status = Publication.Status.PUBLISHED if state.published else Publication.Status.FAILED
    publication.finished_at = now
    publication.save(update_fields=["wechat_status", "article_id", "urls", "status", "finished_at", "updated_at"])
    if state.published:
        for item in publication.draft.items.all():
            url = state.urls.get(item.position + 1, "")
            options, _created = ArticleWeChat.objects.get_or_create(article_id=item.article_id)
            options.wechat_article_id, options.wechat_url, options.published_at = state.article_id, url, now
            options.save(update_fields=["wechat_article_id", "wechat_url", "published_at", "updated_at"])
    return publication


def publish_job_finish(interaction: Any) -> None:
    """PUBLISHJOBFINISH (a follow-up of the callback): its PublishEventInfo is the publication's result."""
    info = (interaction.data or {}).get("PublishEventInfo")
    if isinstance(info, dict):
        publication_apply(state=publish_state(info))


def publications_poll(*, older_than: dt.timedelta = dt.timedelta(minutes=2)) -> int:
    """The fallback: ask WeChat about publications still publishing after `older_than`."""
    from wechat_crm.wechat.client import get_client

    done = 0
    cutoff = timezone.now() - older_than
    for publication in Publication.objects.filter(status=Publication.Status.PUBLISHING, created_at__lt=cutoff)[:50]:
        try:
            state = get_client().publish_get(publish_id=publication.publish_id)
        except WeChatError:
            continue
        if publication_apply(state=state) and not state.pending:
            done += 1
    return done
