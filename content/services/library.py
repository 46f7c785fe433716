"""Changes of state of the library's articles (create, edit, publish under a row lock) and topics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..errors import ArticleStatusError
from ..models import Article, Topic
from ..slugs import short_id, slug_unique

ARTICLE_FIELDS = ("title", "slug", "digest", "body", "cover", "author")

# --- Articles -----------------------------------------------------------------------------------------------------

# The legal status changes: from -> the states it may go to.
ARTICLE_TRANSITIONS: dict[str, set[str]] = {
    Article.Status.DRAFT: {Article.Status.PUBLISHED},
    Article.Status.PUBLISHED: {Article.Status.DRAFT},
}


@transaction.atomic
def article_create(
    *,
    title: str,
    body: str = "",
    digest: str = "",
    author: str = "",
    slug: str = "",
    cover: Any = None,
    topics: Iterable[Topic] = (),
    by: Any = None,
) -> Article:
    """A new draft article. The slug is derived from the title when empty; the body is rendered and sanitised."""
    article = Article(title=title, body=body, digest=digest, author=author, slug=slug, created_by=by)
    if cover:
        article.cover = cover
    try:
        with transaction.atomic():
            article.save()
    except IntegrityError:
        if slug:  # the operator's slug is taken (validated at the edge, so a race): let the caller see it
            raise
        # Another save took the same derived slug between our check and insert: derive a fresh one.
        article.pk, article.slug = None, f"{slug_unique(Article, title, max_length=91)}-{short_id(4)}"
        article.save()
    article.topics.set(list(topics))
    return article


@transaction.atomic
def article_update(*, article: Article, data: Mapping[str, Any]) -> Article:
    """Change an article's editable fields (not its status: see article_set_status). `topics` replaces the set."""
    changed = []
    for name in ARTICLE_FIELDS:
        if name in data:
            setattr(article, name, data[name])
            changed.append(name)
    if changed:
        article.save(update_fields=[*changed, "updated_at"])
    if "topics" in data:
        article.topics.set(list(data["topics"]))
    return article


@transaction.atomic
def article_set_status(*, article: Article, to: str, at: datetime | None = None) -> Article:
    """Publish or unpublish, under a row lock. Raise ArticleStatusError on an illegal change.

    `published_at` is set on the first publication and kept when an article is unpublished and published again,
    so links and "new" markers do not move.
    """
    locked = Article.objects.select_for_update().get(pk=article.pk)
    if to not in Article.Status.values:
        raise ArticleStatusError(_("Unknown status %(status)s.") % {"status": to})
    if to not in ARTICLE_TRANSITIONS[locked.status]:
        raise ArticleStatusError(
            _('"%(title)s" is already %(status)s.') % {"title": locked.title, "status": locked.get_status_display()}
            if to == locked.status
            else _("An article cannot go from %(from)s to %(to)s.") % {"from": locked.status, "to": to}
        )
    if to == Article.Status.PUBLISHED and not locked.body.strip():
        raise ArticleStatusError(_('"%(title)s" has no body to publish.') % {"title": locked.title})
    locked.status = to
    fields = ["status", "updated_at"]
    if to == Article.Status.PUBLISHED and locked.published_at is None:
        locked.published_at = at or timezone.now()
        fields.append("published_at")
    locked.save(update_fields=fields)
    article.status, article.published_at, article.updated_at = locked.status, locked.published_at, locked.updated_at
    return article


def article_publish(*, article: Article, at: datetime | None = None) -> Article:
    return article_set_status(article=article, to=Article.Status.PUBLISHED, at=at)


def article_unpublish(*, article: Article) -> Article:
    return article_set_status(article=article, to=Article.Status.DRAFT)


# --- Topics -------------------------------------------------------------------------------------------------------


def topic_create(*, name: str, slug: str = "", description: str = "") -> Topic:
    topic = Topic(name=name, slug=slug, description=description)
    topic.save()
    return topic


def topic_update(*, topic: Topic, data: Mapping[str, Any]) -> Topic:
    changed = [name for name in ("name", "slug", "description") if name in data]
    for name in changed:
        setattr(topic, name, data[name])
    if changed:
        topic.save(update_fields=changed)
    return topic


def topic_delete(*, topic: Topic) -> None:
    """Delete the topic: articles lose it, subscribers' preferences and opt-outs of it go with it."""
    topic.delete()
