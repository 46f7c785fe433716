"""The demo that `make run` shows: content, a segment and a campaign (demo_setup), then channels with QR codes from
the fake WeChat server and simulated followers who scan them, write and click (demo_traffic)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

ARTICLES = (
    ("tech", "demo-ai-notes", "把 AI 用在日常工作里的 5 个小方法", "不需要编程，也能让 AI 帮你整理会议纪要和周报。"),
    ("finance", "demo-budget", "年轻人的第一份记账表", "三列表格，十分钟上手，月底不再心里没底。"),
    ("life", "demo-weekend", "周末两小时，把厨房收拾得井井有条", "收纳的关键不是买盒子，而是先扔掉不用的东西。"),
)
# (scene_str, name, topic slug, welcome reply)
CHANNELS = (
    ("demo-poster-spring", "春季海报", "tech", "欢迎关注！回复“科技”看看我们最受欢迎的文章。"),
    ("demo-store-counter", "门店收银台", "life", "感谢在门店扫码关注，回复“TD”可随时停止推送。"),
)
CAMPAIGN = "春季上新"

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def demo_refuse_unsafe(*, uses_api: bool = True) -> None:
    """The fake WeChat server, the simulator and the demo commands sign callbacks with our token, make a superuser
    with a known password and create QR codes: never under the production settings, and (`uses_api`) never while
    WECHAT_API_BASE_URL names a server that is not on this machine: that is a real account's configuration (the
    real account would get the demo's QR codes, and its token would sign the fake's callbacks)."""
    if getattr(settings, "IS_PRODUCTION", False):
        raise CommandError(_("Refused: this command is for the demo and the tests, not for the production settings."))
    host = urlsplit(settings.WECHAT_API_BASE_URL).hostname or ""
    if uses_api and host not in LOOPBACK_HOSTS:
        raise CommandError(
            _("Refused: WECHAT_API_BASE_URL (%(url)s) is not the fake WeChat server on this machine.")
            % {"url": settings.WECHAT_API_BASE_URL}
        )


@transaction.atomic
def demo_content_load(*, by=None) -> None:
    """Published articles for each demo topic, an "active this month" segment and a campaign. Safe to run again."""
    from campaigns.models import Campaign
    from content import services as content_services
    from content.models import Article, Segment, Topic

    for topic_slug, slug, title, digest in ARTICLES:
        if Article.objects.filter(slug=slug).exists():
            continue
        topics = list(Topic.objects.filter(slug=topic_slug))
        note = _("This is a demo article.")
        body = f"# {title}\n\n{digest}\n\n{note}"
        article = content_services.article_create(
            title=title, slug=slug, digest=digest, body=body, topics=topics, by=by
        )
        content_services.article_publish(article=article)
    Segment.objects.get_or_create(
        name=_("Active in the last 30 days"),
        defaults={"rules": {"op": "and", "rules": [{"type": "last_interaction", "within_days": 30}]}, "created_by": by},
    )
    Campaign.objects.get_or_create(
        name=CAMPAIGN,
        defaults={"goal": _("Demo: followers from posters and the store"), "starts_on": timezone.localdate()},
    )


def demo_channels_create() -> list[str]:
    """The demo channels, with permanent QR codes from WeChat (the fake server), in the demo campaign."""
    from campaigns.models import Campaign, Channel
    from campaigns.services import channel_create
    from content.models import Topic
    from conversations.models import ChannelTopic

    campaign = Campaign.objects.filter(name=CAMPAIGN).first()
    for scene_str, name, topic_slug, welcome in CHANNELS:
        channel = Channel.objects.filter(scene_str=scene_str).first()
        if channel is None:
            channel = channel_create(name=name, scene_str=scene_str, welcome_reply=welcome)
        topic = Topic.objects.filter(slug=topic_slug).first()
        if topic is not None:
            ChannelTopic.objects.get_or_create(channel=channel, defaults={"topic": topic})
        if campaign is not None:
            campaign.channels.add(channel)
    return [scene_str for scene_str, *_rest in CHANNELS]


def _demo_cover(article) -> None:
    """A generated JPEG cover for a demo article (WeChat needs one for a draft)."""
    import io

    from django.core.files.base import ContentFile
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (900, 383), "#07c160")
    ImageDraw.Draw(image).rectangle((40, 40, 860, 343), outline="white", width=6)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    article.cover.save(f"{article.slug}.jpg", ContentFile(out.getvalue()), save=False)
    article.save(update_fields=["cover", "updated_at"])


def demo_publish() -> dict[str, int]:
    """On the (fake) WeChat: publish the first demo article (发布) and send one news push of the second to every
    follower (material upload, its draft, a mass send of mpnews). Safe to run again: each is done once."""
    from content.models import Article, Push
    from content.services import pushes
    from publishing.models import Publication, PushNews
    from publishing.services.publish import article_publish

    articles = {a.slug: a for a in Article.objects.filter(slug__in=[slug for _t, slug, *_r in ARTICLES])}
    for article in articles.values():
        if not article.cover:
            _demo_cover(article)
    done = {"published": 0, "news_pushes": 0}
    first, second = articles.get(ARTICLES[0][1]), articles.get(ARTICLES[1][1])
    if first is not None and not Publication.objects.filter(draft__items__article=first).exists():
        article_publish(article=first)
        done["published"] = 1
    name = _("Demo news push")
    if second is not None and not Push.objects.filter(name=name).exists():
        push = pushes.push_create(name=name, channel=Push.Channel.NEWS, article=second)
        PushNews.objects.create(push=push, to_all=True, send_ignore_reprint=True)
        pushes.push_schedule(push=push, send_at=timezone.now())
        done["news_pushes"] = 1
    return done
