"""The payload builders produce exactly the JSON WeChat documents for each call."""

from __future__ import annotations

import pytest

from wechat_crm.wechat import messages
from wechat_crm.wechat.messages import MiniProgram, NewsArticle


def test_custom_text_is_wechats_text_message():
    assert messages.custom_text(openid="o1", text="你好") == {
        "touser": "o1",
        "msgtype": "text",
        "text": {"content": "你好"},
    }


def test_custom_image_names_the_media():
    assert messages.custom_image(openid="o1", media_id="m1") == {
        "touser": "o1",
        "msgtype": "image",
        "image": {"media_id": "m1"},
    }


def test_custom_news_is_one_card_and_a_card_without_picture_has_no_picurl():
    cards = [
        NewsArticle(title="T", description="D", url="https://e.x/a", picurl="https://e.x/p.jpg"),
        NewsArticle(title="second", url="https://e.x/b"),
    ]
    assert messages.custom_news(openid="o1", articles=cards) == {
        "touser": "o1",
        "msgtype": "news",
        "news": {
            "articles": [{"title": "T", "description": "D", "url": "https://e.x/a", "picurl": "https://e.x/p.jpg"}]
        },
    }
    bare = messages.custom_news(openid="o1", articles=[NewsArticle(title="T", url="https://e.x/a")])
    assert bare["news"]["articles"] == [{"title": "T", "description": "", "url": "https://e.x/a"}]


def test_custom_mpnews_and_published_article_cards():
    assert messages.custom_mpnews(openid="o1", media_id="m1") == {
        "touser": "o1",
        "msgtype": "mpnews",
        "mpnews": {"media_id": "m1"},
    }
    assert messages.custom_mpnewsarticle(openid="o1", article_id="a1") == {
        "touser": "o1",
        "msgtype": "mpnewsarticle",
        "mpnewsarticle": {"article_id": "a1"},
    }


def test_template_message_carries_url_and_mini_program_only_when_given():
    data = {"first": {"value": "Hi", "color": "#173177"}, "keyword1": "plain"}
    assert messages.template_message(
        openid="o1",
        template_id="tpl",
        data=data,
        url="https://e.x/r/1",
        miniprogram=MiniProgram(appid="wxmini", pagepath="index?x=1"),
    ) == {
        "touser": "o1",
        "template_id": "tpl",
        "url": "https://e.x/r/1",
        "miniprogram": {"appid": "wxmini", "pagepath": "index?x=1"},
        "data": {"first": {"value": "Hi", "color": "#173177"}, "keyword1": {"value": "plain"}},
    }
    assert messages.template_message(openid="o1", template_id="tpl", data={}, miniprogram=MiniProgram(appid="")) == {
        "touser": "o1",
        "template_id": "tpl",
        "data": {},
    }
    with_guard = messages.template_message(openid="o1", template_id="tpl", data={}, client_msg_id="push1-d2")
    assert with_guard["client_msg_id"] == "push1-d2"


def test_subscription_notice_is_wechats_bizsend_shape():
    assert messages.subscription_notice(
        openid="o1", template_id="tpl", data={"thing1": "新文章"}, page="https://e.x/a"
    ) == {"touser": "o1", "template_id": "tpl", "page": "https://e.x/a", "data": {"thing1": {"value": "新文章"}}}


def test_mass_contents():
    assert messages.mass_text("hi") == {"msgtype": "text", "text": {"content": "hi"}}
    assert messages.mass_image("m1") == {"msgtype": "image", "image": {"media_id": "m1"}}
    assert messages.mass_voice("m1") == {"msgtype": "voice", "voice": {"media_id": "m1"}}
    assert messages.mass_mpnews("m1", send_ignore_reprint=True) == {
        "msgtype": "mpnews",
        "mpnews": {"media_id": "m1"},
        "send_ignore_reprint": 1,
    }


def test_mass_send_to_a_tag_to_everyone_and_to_openids():
    content = messages.mass_text("hi")
    assert messages.mass_to_tag(content, tag_id=7, clientmsgid="push1-tag") == {
        "filter": {"is_to_all": False, "tag_id": 7},
        "msgtype": "text",
        "text": {"content": "hi"},
        "clientmsgid": "push1-tag",
    }
    assert messages.mass_to_all(content) == {
        "filter": {"is_to_all": True},
        "msgtype": "text",
        "text": {"content": "hi"},
    }
    assert messages.mass_to_openids(content, openids=("o1", "o2"), clientmsgid="c") == {
        "touser": ["o1", "o2"],
        "msgtype": "text",
        "text": {"content": "hi"},
        "clientmsgid": "c",
    }
    assert content == {"msgtype": "text", "text": {"content": "hi"}}  # builders never change their input


def test_mass_send_to_openids_refuses_an_empty_list():
    with pytest.raises(ValueError):
        messages.mass_to_openids(messages.mass_text("hi"), openids=[])


def test_mass_preview_goes_to_an_openid_or_a_wechat_id():
    content = messages.mass_mpnews("m1")
    assert messages.mass_preview(content, openid="o1") == {
        "touser": "o1",
        "msgtype": "mpnews",
        "mpnews": {"media_id": "m1"},
        "send_ignore_reprint": 0,
    }
    assert messages.mass_preview(messages.mass_text("hi"), wxname="someone") == {
        "towxname": "someone",
        "msgtype": "text",
        "text": {"content": "hi"},
    }
    with pytest.raises(ValueError):
        messages.mass_preview(content)


def test_qrcodes_menu_tags_and_profile_batches():
    assert messages.qrcode_temporary(scene_str="booth", expire_seconds=600) == {
        "expire_seconds": 600,
        "action_name": "QR_STR_SCENE",
        "action_info": {"scene": {"scene_str": "booth"}},
    }
    assert messages.qrcode_permanent(scene_str="booth") == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "booth"}},
    }
    button = {"type": "click", "name": "Hi", "key": "hi"}
    assert messages.menu([button]) == {"button": [button]}
    assert messages.tag_members(tag_id=3, openids=["o1"]) == {"tagid": 3, "openid_list": ["o1"]}
    assert messages.users_batch(["o1", "o2"]) == {
        "user_list": [{"openid": "o1", "lang": "zh_CN"}, {"openid": "o2", "lang": "zh_CN"}]
    }
    with pytest.raises(ValueError):
        messages.tag_members(tag_id=3, openids=[f"o{i}" for i in range(51)])
    with pytest.raises(ValueError):
        messages.users_batch([f"o{i}" for i in range(101)])
