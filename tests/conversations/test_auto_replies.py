"""Auto-reply rules and preference keywords answered on the callback (signed, plain and safe mode); rules that
match nothing leave the message unanswered in the inbox; a template rule is sent after the callback."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Interaction, Subscriber
from accounts.tasks import interaction_process
from content.models import Article, Topic
from conversations.models import AutoReplyRule, Conversation, OutboundMessage
from conversations.services import outbound_send
from tests.campaigns.factories import ChannelFactory
from tests.content.factories import MessageTemplateFactory
from tests.fixtures.wechat_payloads import build_message
from wechat_crm.wechat import xml

OPENID = "oConv_0000000000000000000001"


def _reply(poster, response) -> dict:
    text = poster.reply_text(response)
    return xml.parse(text.encode()) if text.startswith("<xml>") else {"raw": text}


def _rule(**kw) -> AutoReplyRule:
    rule = AutoReplyRule(name=kw.pop("name", "rule"), **kw)
    rule.full_clean()
    rule.save()
    return rule


def _process_all():
    for pk in Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True):
        interaction_process(pk)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_text_rules_match_exactly_by_containment_and_by_regex_in_priority_order(poster, mode):
    _rule(trigger="text_exact", pattern="价格", reply_text="exact price")
    _rule(trigger="text_contains", pattern="发票", reply_text="invoice help")
    _rule(trigger="text_regex", pattern=r"^订单\s*\d{6}$", reply_text="order lookup")
    _rule(trigger="text_contains", pattern="发票", reply_text="urgent invoice", priority=10)

    def ask(content: str) -> dict:
        return _reply(poster, poster.post(build_message("text", openid=OPENID, Content=content), mode))

    assert ask("价格")["Content"] == "exact price"
    assert ask("价格多少").get("raw") == "success"  # exact does not match a longer text
    assert ask("我要开发票")["Content"] == "urgent invoice"  # the higher priority wins
    assert ask("订单 123456")["Content"] == "order lookup"
    assert ask("订单 12")["raw"] == "success"


@pytest.mark.django_db
def test_an_invalid_regex_is_refused_on_save(staff_client):
    response = staff_client.post(
        "/admin/conversations/autoreplyrule/add/",
        {"name": "bad", "trigger": "text_regex", "pattern": "([a-", "reply_kind": "text", "reply_text": "x",
         "priority": "0", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "Not a valid regular expression" in response.content.decode()
    assert not AutoReplyRule.objects.exists()


@pytest.mark.django_db
def test_image_and_article_card_replies(poster, settings):
    settings.PUBLIC_BASE_URL = "https://crm.example.com"
    article = Article.objects.create(title="新品发布", digest="看看新品", status=Article.Status.PUBLISHED)
    _rule(trigger="text_exact", pattern="图", reply_kind="image", media_id="MEDIA_1")
    _rule(trigger="click", pattern="NEWS", reply_kind="news", article=article)
    Subscriber.objects.create(openid=OPENID, is_following=True)

    image = _reply(poster, poster.post(build_message("text", openid=OPENID, Content="图"), "safe"))
    assert image["MsgType"] == "image" and image["Image"] == {"MediaId": "MEDIA_1"}

    card = _reply(poster, poster.post(build_message("CLICK", openid=OPENID, EventKey="NEWS"), "plain"))
    assert card["MsgType"] == "news" and card["ArticleCount"] == "1"
    item = card["Articles"]["item"]
    assert item["Title"] == "新品发布" and item["Description"] == "看看新品"
    assert item["Url"].startswith("https://crm.example.com/r/")  # our tracked link


@pytest.mark.django_db
def test_active_hours_are_shanghai_time(poster):
    _rule(
        trigger="text_exact", pattern="客服", reply_text="we are open", active_from=dt.time(9), active_until=dt.time(18)
    )
    at_10_shanghai = int(dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC).timestamp())
    at_20_shanghai = int(dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp())

    open_ = poster.post(build_message("text", openid=OPENID, Content="客服", create_time=at_10_shanghai), "plain")
    closed = poster.post(build_message("text", openid=OPENID, Content="客服", create_time=at_20_shanghai), "plain")

    assert _reply(poster, open_)["Content"] == "we are open"
    assert closed.content == b"success"


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_rule_for_a_channel_beats_its_welcome_which_beats_a_generic_follow_rule(poster, mode):
    ChannelFactory(name="Fair", scene_str="fair", welcome_reply="channel welcome")
    booth = ChannelFactory(name="Booth", scene_str="booth", welcome_reply="booth welcome")
    ChannelFactory(name="Quiet", scene_str="quiet", welcome_reply="")
    _rule(trigger="follow", reply_text="generic follow")
    _rule(trigger="follow", channel=booth, reply_text="booth rule")

    def follow(openid: str, key: str) -> str:
        reply = _reply(poster, poster.post(build_message("subscribe", openid=openid, EventKey=key), mode))
        return reply.get("Content", reply.get("raw"))

    assert follow("oF1", "qrscene_booth") == "booth rule"
    assert follow("oF2", "qrscene_fair") == "channel welcome"
    assert follow("oF3", "qrscene_quiet") == "generic follow"
    assert follow("oF4", "") == "generic follow"


@pytest.mark.django_db
def test_unmatched_messages_wait_unanswered_in_the_inbox_and_answered_ones_do_not(poster):
    _rule(trigger="text_exact", pattern="hi", reply_text="hello")
    poster.post(build_message("text", openid="oAnswered", Content="hi"), "plain")
    poster.post(build_message("text", openid="oWaiting", Content="my order is late"), "plain")
    poster.post(build_message("text", openid="oWaiting", Content="hello?"), "plain")
    _process_all()

    inbox = list(Conversation.objects.order_by("-unanswered", "-last_inbound_at").values_list(
        "subscriber__openid", "unanswered"))  # fmt: skip
    assert inbox == [("oWaiting", 2), ("oAnswered", 0)]


@pytest.mark.django_db
def test_a_template_rule_is_sent_after_the_callback(poster, fake_with_token):
    template = MessageTemplateFactory(wechat_template_id="TPL_ORDER", fields=[{"key": "first", "value": "订单已收到"}])
    _rule(trigger="text_exact", pattern="查订单", reply_kind="template", template=template)
    fake_with_token.add_users([{"openid": OPENID, "subscribe": 1}])

    response = poster.post(build_message("text", openid=OPENID, Content="查订单"), "safe")
    assert response.content == b"success"  # not a passive reply
    _process_all()
    _process_all()  # a follow-up run twice sends once
    (message,) = OutboundMessage.objects.all()
    outbound_send(message_id=message.pk)
    outbound_send(message_id=message.pk)

    (call,) = fake_with_token.calls("/cgi-bin/message/template/send")
    assert call["body"]["touser"] == OPENID and call["body"]["template_id"] == "TPL_ORDER"
    assert call["body"]["data"] == {"first": {"value": "订单已收到"}}
    message.refresh_from_db()
    assert message.status == "sent" and message.source == "auto_reply"
    assert Conversation.objects.get().unanswered == 0


@pytest.mark.django_db
def test_rules_are_cached_no_query_per_rule(poster):
    for i in range(20):
        _rule(name=f"r{i}", trigger="text_exact", pattern=f"kw{i}", reply_text=f"answer {i}")

    def queries(content: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            poster.post(build_message("text", openid=OPENID, Content=content), "plain")
        return len(ctx.captured_queries)

    queries("warm up")
    baseline = queries("nothing matches")
    assert queries("kw19") == baseline  # a match costs no query either


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("TD", lambda s: s.pushes_paused),
        ("每周 2", lambda s: s.max_pushes_per_week == 2),
        ("只看 科技", lambda s: [t.name for t in s.topics_preferred.all()] == ["科技"]
         and [t.name for t in s.topics_opted_out.all()] == ["财经"]),
        ("退订 财经", lambda s: [t.name for t in s.topics_opted_out.all()] == ["财经"]),
    ],
)  # fmt: skip
def test_preference_keywords_are_stored_and_confirmed(poster, text, check):
    Topic.objects.create(name="科技", slug="tech")
    Topic.objects.create(name="财经", slug="finance")

    reply = _reply(poster, poster.post(build_message("text", openid=OPENID, Content=text), "safe"))

    assert reply["MsgType"] == "text" and reply["Content"]
    assert check(Subscriber.objects.get(openid=OPENID))


@pytest.mark.django_db
def test_td_then_resume_and_the_preference_menu_keys(poster):
    Topic.objects.create(name="科技", slug="tech")
    poster.post(build_message("text", openid=OPENID, Content="TD"), "plain")
    assert Subscriber.objects.get(openid=OPENID).pushes_paused
    poster.post(build_message("text", openid=OPENID, Content="恢复"), "plain")
    assert not Subscriber.objects.get(openid=OPENID).pushes_paused
    reply = _reply(poster, poster.post(build_message("CLICK", openid=OPENID, EventKey="PREF:OUT:tech"), "plain"))
    assert "科技" in reply["Content"]
    assert list(Subscriber.objects.get(openid=OPENID).topics_opted_out.values_list("slug", flat=True)) == ["tech"]


@pytest.mark.django_db
def test_a_preference_from_a_new_subscriber_leaves_them_following(poster):
    poster.post(build_message("text", openid="oNewPref_000000000000000001", Content="每周 1"), "plain")
    _process_all()  # the message's last_interaction_at moves in its follow-ups

    sub = Subscriber.objects.get(openid="oNewPref_000000000000000001")
    assert sub.is_following and sub.max_pushes_per_week == 1 and sub.last_interaction_at is not None


@pytest.mark.django_db
def test_the_admin_pages_render(staff_client):
    from django.core.management import call_command

    from conversations.models import Journey

    call_command("conversations_seed_examples")
    sub = Subscriber.objects.create(openid=OPENID, is_following=True)
    Conversation.objects.create(subscriber=sub, unanswered=2)
    for model in ("autoreplyrule", "menu", "conversation", "journey", "journeyenrollment", "outboundmessage",
                  "notification", "scorerule", "scoreentry", "channeltopic"):  # fmt: skip
        response = staff_client.get(f"/admin/conversations/{model}/")
        assert response.status_code == 200, model
    journey = Journey.objects.get(trigger="follow")
    page = staff_client.get(f"/admin/conversations/journey/{journey.pk}/change/").content.decode()
    assert "Entered: 0" in page and "Converted: 0" in page
    assert staff_client.get("/admin/conversations/journey/add/").status_code == 200
    assert staff_client.get("/admin/conversations/autoreplyrule/add/").status_code == 200


@pytest.mark.django_db
def test_a_catastrophic_regex_is_stopped_skipped_and_flagged_in_the_admin(poster, staff_client, settings):
    import time

    settings.AUTO_REPLY_REGEX_TIMEOUT = 0.05
    evil = _rule(trigger="text_regex", pattern=r"^(a|aa)+$", reply_text="never", priority=10)
    _rule(trigger="text_contains", pattern="aaa", reply_text="fallback")

    started = time.monotonic()
    response = poster.post(build_message("text", openid=OPENID, Content="a" * 60 + "!"), "plain")
    elapsed = time.monotonic() - started

    assert response.status_code == 200 and elapsed < 2.0  # unbounded, this expression runs for hours
    assert _reply(poster, response)["Content"] == "fallback"
    evil.refresh_from_db()
    assert evil.regex_timed_out_at is not None
    listed = staff_client.get("/admin/conversations/autoreplyrule/").content.decode()
    assert "Timed out on a message" in listed
    # A new pattern clears the flag.
    page = staff_client.get(f"/admin/conversations/autoreplyrule/{evil.pk}/change/")
    assert page.status_code == 200
