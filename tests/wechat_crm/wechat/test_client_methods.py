"""Each client method sends the builder's payload to WeChat's call for that action and reads WeChat's answer."""

from __future__ import annotations

import json

import pytest

from tests.wechat_crm.wechat.test_client_http import stub  # noqa: F401 - the scripted WeChat fixture
from wechat_crm.wechat import messages
from wechat_crm.wechat.client import MassSent, OpenidPage, QRCodeTicket, get_client
from wechat_crm.wechat.errors import Outcome, WeChatDuplicate
from wechat_crm.wechat.messages import NewsArticle


def _last(stub, path):  # noqa: F811
    call = stub.paths(path)[-1]
    return json.loads(call["body"]) if call["body"] else None


def test_single_messages_go_to_the_template_and_customer_service_calls(stub):  # noqa: F811
    client = get_client()
    assert client.send_template(openid="o1", template_id="tpl", data={"first": "Hi"}, url="https://e.x/").ok
    assert _last(stub, "/cgi-bin/message/template/send") == messages.template_message(
        openid="o1", template_id="tpl", data={"first": "Hi"}, url="https://e.x/"
    )
    assert client.send_custom_text(openid="o1", text="hello").ok
    assert _last(stub, "/cgi-bin/message/custom/send") == messages.custom_text(openid="o1", text="hello")
    card = NewsArticle(title="T", url="https://e.x/a")
    result = client.send_custom_news(openid="o1", articles=[card])
    assert result.ok and result.msgid is not None
    assert _last(stub, "/cgi-bin/message/custom/send") == messages.custom_news(openid="o1", articles=[card])
    assert client.send_subscription_notice(openid="o1", template_id="t", data={"thing1": "x"}).ok
    assert _last(stub, "/cgi-bin/message/subscribe/bizsend")["data"] == {"thing1": {"value": "x"}}


def test_a_refused_single_message_is_a_result_not_an_exception(stub):  # noqa: F811
    stub.script("/cgi-bin/message/custom/send", {"json": {"errcode": 43004, "errmsg": "require subscribe"}})
    result = get_client().send_custom_message(messages.custom_text(openid="o1", text="hello"))
    assert not result.ok
    assert result.outcome is Outcome.NOT_FOLLOWING


def test_mass_sends_go_to_their_calls_and_return_wechats_ids(stub):  # noqa: F811
    client = get_client()
    stub.script("/cgi-bin/message/mass/sendall", {"json": {"errcode": 0, "msg_id": 11, "msg_data_id": 12}})
    sent = client.mass_send_to_tag(messages.mass_text("hi"), tag_id=5, clientmsgid="c1")
    assert sent == MassSent(msg_id=11, msg_data_id=12)
    assert _last(stub, "/cgi-bin/message/mass/sendall") == messages.mass_to_tag(
        messages.mass_text("hi"), tag_id=5, clientmsgid="c1"
    )
    stub.script("/cgi-bin/message/mass/send", {"json": {"errcode": 0, "msg_id": 21}})
    assert client.mass_send_to_openids(messages.mass_text("hi"), openids=["o1", "o2"]).msg_id == 21
    assert _last(stub, "/cgi-bin/message/mass/send")["touser"] == ["o1", "o2"]
    client.mass_send_to_all(messages.mass_mpnews("m1"))
    assert _last(stub, "/cgi-bin/message/mass/sendall")["filter"] == {"is_to_all": True}
    client.mass_preview(messages.mass_mpnews("m1"), openid="o1")
    assert _last(stub, "/cgi-bin/message/mass/preview")["touser"] == "o1"


def test_a_repeated_mass_send_raises_the_typed_duplicate(stub):  # noqa: F811
    stub.script("/cgi-bin/message/mass/sendall", {"json": {"errcode": 45065, "errmsg": "clientmsgid exist"}})
    with pytest.raises(WeChatDuplicate):
        get_client().mass_send_to_tag(messages.mass_text("hi"), tag_id=5, clientmsgid="c1")


def test_followers_profiles_and_tags(stub):  # noqa: F811
    client = get_client()
    stub.script(
        "/cgi-bin/user/get",
        {"json": {"total": 3, "count": 2, "data": {"openid": ["o1", "o2"]}, "next_openid": "o2"}},
        {"json": {"total": 3, "count": 0, "next_openid": ""}},
    )
    assert client.followers_page() == OpenidPage(openids=["o1", "o2"], next_openid="o2", total=3)
    assert client.followers_page("o2") == OpenidPage(openids=[], next_openid="", total=3)
    assert stub.paths("/cgi-bin/user/get")[-1]["query"]["next_openid"] == "o2"
    stub.script("/cgi-bin/user/info/batchget", {"json": {"user_info_list": [{"openid": "o1", "subscribe": 1}]}})
    assert client.users_info(["o1"]) == [{"openid": "o1", "subscribe": 1}]
    assert _last(stub, "/cgi-bin/user/info/batchget") == messages.users_batch(["o1"])
    stub.script("/cgi-bin/tags/get", {"json": {"tags": [{"id": 2, "name": "VIP", "count": 1}]}})
    assert client.tags_list() == [{"id": 2, "name": "VIP", "count": 1}]
    stub.script("/cgi-bin/tags/create", {"json": {"tag": {"id": 101, "name": "new"}}})
    assert client.tag_create("new") == 101
    stub.script("/cgi-bin/user/tag/get", {"json": {"count": 1, "data": {"openid": ["o1"]}, "next_openid": "o1"}})
    assert client.tag_members_page(101) == OpenidPage(openids=["o1"], next_openid="o1")
    client.tag_users(101, ["o1", "o2"])
    assert _last(stub, "/cgi-bin/tags/members/batchtagging") == {"tagid": 101, "openid_list": ["o1", "o2"]}
    client.untag_users(101, ["o3"])
    assert _last(stub, "/cgi-bin/tags/members/batchuntagging") == {"tagid": 101, "openid_list": ["o3"]}
    client.tag_rename(101, "renamed")
    assert _last(stub, "/cgi-bin/tags/update") == {"tag": {"id": 101, "name": "renamed"}}
    client.tag_delete(101)
    assert _last(stub, "/cgi-bin/tags/delete") == {"tag": {"id": 101}}


def test_qrcodes_and_the_menu(stub):  # noqa: F811
    client = get_client()
    stub.script(
        "/cgi-bin/qrcode/create",
        {"json": {"ticket": "tk", "url": "http://weixin.qq.com/q/x", "expire_seconds": 600}},
        {"json": {"ticket": "tk2", "url": "http://weixin.qq.com/q/y"}},
    )
    assert client.create_qrcode(scene_str="booth", expire_seconds=600) == QRCodeTicket(
        ticket="tk", url="http://weixin.qq.com/q/x", expire_seconds=600
    )
    assert _last(stub, "/cgi-bin/qrcode/create") == messages.qrcode_temporary(scene_str="booth", expire_seconds=600)
    assert client.create_qrcode(scene_str="booth") == QRCodeTicket(ticket="tk2", url="http://weixin.qq.com/q/y")
    assert _last(stub, "/cgi-bin/qrcode/create") == messages.qrcode_permanent(scene_str="booth")
    button = {"type": "click", "name": "Hi", "key": "hi"}
    client.menu_create([button])
    assert _last(stub, "/cgi-bin/menu/create") == {"button": [button]}
