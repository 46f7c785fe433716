"""Demo examples of conversations: a welcome series, a dormant-lead follow-up, preference menu, auto-replies and
score rules. Safe to run again (looked up by name; nothing is duplicated)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from content.models import MessageTemplate, Topic
from conversations.models import AutoReplyRule, Journey, JourneyStep, Menu, ScoreRule
from conversations.scores import DEFAULT_SCORE_POINTS

WELCOME = "示例：欢迎系列"
DORMANT = "示例：沉睡线索唤醒"


def _template(title: str, wechat_id: str, first: str) -> MessageTemplate:
    template, _created = MessageTemplate.objects.get_or_create(
        title=title,
        defaults={
            "wechat_template_id": wechat_id,
            "fields": [{"key": "first", "value": first}, {"key": "remark", "value": "回复 TD 退订"}],
        },
    )
    return template


class Command(BaseCommand):
    help = _("Load the conversations demo examples (welcome series, dormant-lead follow-up, menu, auto-replies).")

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        for name, slug in (("科技", "tech"), ("财经", "finance"), ("生活", "life")):
            Topic.objects.get_or_create(slug=slug, defaults={"name": name})
        for kind, points in DEFAULT_SCORE_POINTS.items():
            ScoreRule.objects.get_or_create(kind=kind, defaults={"points": points})

        digest = _template("示例：精选文章", "DEMO_TPL_DIGEST", "{{ article.title }}")
        offer = _template(
            "示例：新人优惠", "DEMO_TPL_OFFER", "{{ subscriber.nickname|default:'朋友' }}，送你一张新人券"
        )
        comeback = _template("示例：好久不见", "DEMO_TPL_COMEBACK", "好久不见！{{ article.title }}")

        welcome, created = Journey.objects.get_or_create(
            name=WELCOME, defaults={"trigger": Journey.Trigger.FOLLOW, "period": Journey.Period.EVER}
        )
        if created:
            JourneyStep.objects.create(journey=welcome, position=0, action="message",
                                       text="欢迎关注！回复“只看 科技”只接收科技内容，回复 TD 暂停推送。")  # fmt: skip
            JourneyStep.objects.create(journey=welcome, position=1, wait=dt.timedelta(days=2), action="message",
                                       content="topic_best", template=digest,
                                       text="{topic}精选，送给刚关注的你")  # fmt: skip
            JourneyStep.objects.create(journey=welcome, position=2, wait=dt.timedelta(days=5), action="message",
                                       condition="not_converted", template=offer,
                                       text="新人专享优惠，7 天内有效")  # fmt: skip

        dormant, created = Journey.objects.get_or_create(
            name=DORMANT, defaults={"trigger": Journey.Trigger.DORMANT, "dormant_days": 30}
        )
        if created:
            JourneyStep.objects.create(journey=dormant, position=0, action="message", content="topic_best",
                                       condition="pushes_active", template=comeback,
                                       text="好久不见！你关注的{topic}有了新内容")  # fmt: skip
            JourneyStep.objects.create(journey=dormant, position=1, action="notify",
                                       text="沉睡线索 {nickname} 已收到唤醒消息")  # fmt: skip

        rules = [
            {"name": "示例：人工客服", "trigger": "text_contains", "pattern": "人工",
             "reply_text": "客服在线时间 9:00-18:00，请留言，我们会尽快回复。"},
            {"name": "示例：关注欢迎", "trigger": "follow", "reply_text": "欢迎关注！回复“帮助”查看可用指令。"},
            {"name": "示例：帮助", "trigger": "text_exact", "pattern": "帮助",
             "reply_text": "TD 暂停推送 · 恢复 继续推送 · 每周 2 每周最多两条 · 只看 科技 · 退订 财经"},
        ]  # fmt: skip
        for rule in rules:
            AutoReplyRule.objects.get_or_create(name=rule.pop("name"), defaults=rule)

        # The preferences page, opened through web authorisation (conversations.views).
        preferences_url = settings.PUBLIC_BASE_URL.rstrip("/") + reverse("preferences:page")
        Menu.objects.get_or_create(
            name="示例菜单",
            defaults={"buttons": [
                {"type": "click", "name": "今日推荐", "key": "TODAY"},
                {"name": "推送设置", "sub_button": [
                    {"type": "click", "name": "暂停推送", "key": "PREF:TD"},
                    {"type": "click", "name": "恢复推送", "key": "PREF:RESUME"},
                    {"type": "click", "name": "每周两条", "key": "PREF:WEEKLY:2"},
                    {"type": "click", "name": "只看科技", "key": "PREF:ONLY:tech"},
                    {"type": "view", "name": "偏好设置", "url": preferences_url},
                ]},
                {"type": "view", "name": "官网", "url": "https://example.com/"},
            ]},
        )  # fmt: skip
        self.stdout.write(self.style.SUCCESS(_("Conversations examples ready (journeys, auto-replies, menu).")))
