"""News pushes: a push's articles sent as one WeChat draft (mpnews), by mass send, exactly once.

The push's delivery pages (content.services.deliveries) call `news_send` for each mass call. Before any call the
account type's rules are checked, each refusal naming its rule (`news_check`):
  * subscription accounts: one mass send a day (policy.mass_daily_quota), and never to a list of openids;
  * service accounts: 4 mass sends a month (policy.mass_monthly_per_subscriber), counted from our own sends and
    from WeChat's answers (a 45028 this month means the quota is used up);
  * a send to an openid list (a segment) takes 2 to 10,000 followers.
The draft is made once for the push and reused when a send fails and is tried again; once WeChat accepts the send
the draft has left its draft box (consumed). MASSSENDJOBFINISH then fills the batch's totals, article URLs and
copyright check (content.services.deliveries.mass_job_finish).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from content.models import Article, MassBatch, OperatorProfile, Push, SendPolicy
from conversations.policy.limits import mass_quota_reached, month_start
from wechat_crm.wechat.errors import WeChatError, WeChatMassQuota

from ..errors import ArticleInvalid, NewsRefused, WeChatRefused
from ..models import Draft, PushNews
from .drafts import article_check, draft_consumed, draft_for_articles

MASS_MIN_OPENIDS, MASS_MAX_OPENIDS = 2, 10_000


def news_options(push: Push) -> PushNews:
    return PushNews.objects.filter(push_id=push.pk).first() or PushNews(push=push)


def news_articles(push: Push) -> list[Article]:
    """The push's article first, then its news options' more articles (up to 8 in all)."""
    if push.article_id is None:
        raise NewsRefused(_("A news push needs an article."))
    more = list(news_options(push).more_articles.order_by("pk")) if PushNews.objects.filter(push=push).exists() else []
    articles = [push.article, *[a for a in more if a.pk != push.article_id]]
    if len(articles) > 8:
        raise NewsRefused(
            _("A WeChat news message holds at most 8 articles; this push has %(n)s.") % {"n": len(articles)}
        )
    return articles


def by_openid(push: Push) -> bool:
    return push.mass_tag_id is None and not news_options(push).to_all


def news_check(*, push: Push, recipients: int | None = None, now: dt.datetime | None = None) -> None:
    """WeChat's rules for the account type, checked before any call; NewsRefused names the rule broken."""
    now = now or timezone.now()
    policy = SendPolicy.current()
    subscription = policy.account_type == SendPolicy.AccountType.SUBSCRIPTION
    for article in news_articles(push):
        article_check(article)
    if by_openid(push):
        if subscription:
            raise NewsRefused(
                _("Sending to an openid list (a segment) is for service accounts only (WeChat's rule): send to a tag "
                  "or to all followers."),
                extra={"rule": "openid_service_only"},
            )  # fmt: skip
        if push.segment_id is None:
            raise NewsRefused(_("Choose a segment, a tag, or all followers."))
        if recipients is not None and not MASS_MIN_OPENIDS <= recipients <= MASS_MAX_OPENIDS:
            raise NewsRefused(
                _("A mass send to an openid list takes 2 to 10,000 followers (WeChat's rule); this segment has %(n)s.")
                % {"n": recipients},
                extra={"rule": "openids_per_send", "recipients": recipients},
            )
    if subscription:
        if mass_quota_reached(policy=policy, now=now, push_id=push.pk):
            raise NewsRefused(
                _("Subscription accounts may mass-send %(n)s time(s) a day (WeChat's rule); today's is used.")
                % {"n": policy.mass_daily_quota},
                extra={"rule": "subscription_daily"},
            )
        return
    month = month_start(now)
    sent = MassBatch.objects.exclude(push_id=push.pk).filter(sent_at__gte=month).values("push_id").distinct().count()
    refused = MassBatch.objects.filter(refused_at__gte=month).exists()
    if sent >= policy.mass_monthly_per_subscriber or refused:
        raise NewsRefused(
            _("Service accounts may mass-send %(n)s times a month (WeChat's rule); %(sent)s sent this month%(wechat)s.")
            % {
                "n": policy.mass_monthly_per_subscriber,
                "sent": sent,
                "wechat": _(", and WeChat answered that the quota is used up") if refused else "",
            },
            extra={"rule": "service_monthly", "sent": sent},
        )


def news_draft(push: Push) -> Draft:
    """The push's draft on WeChat: made once, reused until a send consumes it."""
    return draft_for_articles(articles=news_articles(push), push=push)


def news_send(*, push: Push, clientmsgid: str, openids: Sequence[str] | None = None) -> Any:
    """One mass call of the push: rules, then material and draft (reused), then mpnews with the draft's media_id.

    Raises NewsRefused / ArticleInvalid / WeChatRefused before sending anything, or the WeChatError of the send
    (the page classifies it). Returns the client's MassSent."""
    from wechat_crm.wechat.client import get_client

    try:
        news_check(push=push, recipients=len(openids) if openids is not None else None)
        draft = news_draft(push)
    except (NewsRefused, ArticleInvalid, WeChatRefused) as exc:
        news_failed(push=push, reason=exc.message)
        raise
    options = news_options(push)
    client = get_client()
    tag_id = push.mass_tag.wechat_tag_id if push.mass_tag_id else None
    try:
        sent = client.mass_news_send(
            media_id=draft.media_id,
            clientmsgid=clientmsgid,
            tag_id=tag_id,
            openids=list(openids) if openids is not None else None,
            send_ignore_reprint=options.send_ignore_reprint,
        )
    except WeChatError as exc:
        if isinstance(exc, WeChatMassQuota):
            MassBatch.objects.filter(clientmsgid=clientmsgid).update(refused_at=timezone.now())
        news_failed(push=push, reason=exc.message)
        raise
    draft_consumed(draft=draft)
    MassBatch.objects.filter(clientmsgid=clientmsgid).update(msg_data_id=sent.msg_data_id)
    return sent


def news_failed(*, push: Push, reason: str) -> None:
    """Keep why the news push failed (shown in its report)."""
    options, _created = PushNews.objects.get_or_create(push=push)
    PushNews.objects.filter(pk=options.pk).update(failure=reason[:1000])


def news_preview(*, push: Push, user: Any, wxname: str = "") -> int | None:
    """ "Send a test to me": the push's draft through WeChat's mass-send preview to the operator's openid (their
    operator profile) or a WeChat ID; no 48-hour window. Raises NewsRefused without either."""
    from wechat_crm.wechat.client import get_client

    openid = ""
    if not wxname:
        profile = OperatorProfile.objects.filter(user_id=getattr(user, "pk", None)).first()
        if profile is None or not profile.openid:
            raise NewsRefused(_("Link your own openid first (Content > Operator profiles), or give a WeChat ID."))
        openid = profile.openid
    draft = news_draft(push)
    try:
        return get_client().mass_news_preview(media_id=draft.media_id, openid=openid, wxname=wxname).msg_id
    except WeChatError as exc:
        raise WeChatRefused(
            _("WeChat refused the preview: %(error)s") % {"error": exc.message}, extra={"errcode": exc.errcode}
        ) from exc
