"""The fake WeChat server, run as a real process and spoken to over HTTP, behaves like WeChat."""

from __future__ import annotations

import time

import pytest
import urllib3

from tests.fixtures.fake_wechat import CallbackReceiver

from .fake_api import AES_KEY, TEMPLATE, _draft, _send_template, _token, _user_get

# --- access tokens ---------------------------------------------------------------------------------------------


def test_token_fetch_with_wrong_credentials_is_refused(fake_wechat):
    cfg = fake_wechat.config()
    wrong_secret = fake_wechat.api("cgi-bin/token", grant_type="client_credential", appid=cfg["appid"], secret="x")
    wrong_appid = fake_wechat.api("cgi-bin/token", grant_type="client_credential", appid="wx0", secret=cfg["secret"])
    wrong_stable = fake_wechat.api(
        "cgi-bin/stable_token", {"grant_type": "client_credential", "appid": cfg["appid"], "secret": "nope"}
    )
    assert (wrong_secret["errcode"], wrong_appid["errcode"], wrong_stable["errcode"]) == (40125, 40013, 40125)


def test_new_token_invalidates_previous_one_after_grace_period(fake_wechat):
    fake_wechat.configure(token_grace=1)
    first = _token(fake_wechat)["access_token"]
    second = _token(fake_wechat)["access_token"]

    assert _user_get(fake_wechat, first)["total"] == 0  # still valid during the grace period
    time.sleep(1.2)

    assert _user_get(fake_wechat, first)["errcode"] == 40001
    assert _user_get(fake_wechat, second)["total"] == 0


def test_expired_token_is_answered_with_42001(fake_wechat):
    fake_wechat.configure(token_ttl=1)
    token = _token(fake_wechat)
    assert token["expires_in"] == 1
    time.sleep(1.2)

    assert _user_get(fake_wechat, token["access_token"])["errcode"] == 42001


def test_unknown_or_missing_token_is_refused(fake_wechat):
    assert _user_get(fake_wechat, "not-a-token")["errcode"] == 40001
    assert fake_wechat.api("cgi-bin/user/get")["errcode"] == 41001


def test_stable_token_is_reused_until_force_refresh(fake_wechat):
    cfg = fake_wechat.config()
    body = {"grant_type": "client_credential", "appid": cfg["appid"], "secret": cfg["secret"]}
    first = fake_wechat.api("cgi-bin/stable_token", body)
    again = fake_wechat.api("cgi-bin/stable_token", body)
    forced = fake_wechat.api("cgi-bin/stable_token", {**body, "force_refresh": True})

    assert again["access_token"] == first["access_token"]
    assert forced["access_token"] != first["access_token"]
    assert fake_wechat.count("/cgi-bin/stable_token") == 3


def test_tokens_are_shared_by_all_worker_processes(fake_wechat):
    token = fake_wechat.fetch_token()
    answers = [
        urllib3.request(
            "GET",
            fake_wechat.url + "cgi-bin/user/get",
            fields={"access_token": token},
            headers={"Connection": "close"},  # a new connection each time, so both workers answer some
        ).json()
        for _ in range(40)
    ]

    assert [a.get("errcode", 0) for a in answers] == [0] * 40
    assert len({c["pid"] for c in fake_wechat.calls("/cgi-bin/user/get")}) == 2


def test_control_helpers_expire_and_invalidate_tokens(fake_wechat):
    token = fake_wechat.fetch_token()
    fake_wechat.expire_tokens()
    assert _user_get(fake_wechat, token)["errcode"] == 42001

    token = fake_wechat.fetch_token()
    fake_wechat.invalidate_tokens()
    assert _user_get(fake_wechat, token)["errcode"] == 40001


# --- users ----------------------------------------------------------------------------------------------------


def test_user_get_pages_through_followers_with_next_openid(fake_wechat):
    fake_wechat.configure(user_get_page_size=3)
    followers = fake_wechat.add_users(generate=7)
    fake_wechat.add_users([{"openid": "o_gone_000000000000000000000", "subscribe": 0}])
    token = fake_wechat.fetch_token()

    seen, pages, next_openid = [], [], None
    while True:
        page = _user_get(fake_wechat, token, next_openid)
        pages.append(page)
        if page["count"] == 0:
            break
        seen += page["data"]["openid"]
        next_openid = page["next_openid"]

    assert seen == followers
    assert [p["count"] for p in pages] == [3, 3, 1, 0]
    assert {p["total"] for p in pages} == {7}


def test_batchget_returns_profiles_in_wechat_shape(fake_wechat):
    fake_wechat.add_users(
        [
            {"openid": "o_alice_00000000000000000000", "unionid": "oU_alice", "remark": "VIP",
             "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene_str": "spring"},
            {"openid": "o_bob_0000000000000000000000", "subscribe": 0},
        ]
    )  # fmt: skip
    token = fake_wechat.fetch_token()
    tag = fake_wechat.api("cgi-bin/tags/create", {"tag": {"name": "VIP"}}, access_token=token)["tag"]
    fake_wechat.api(
        "cgi-bin/tags/members/batchtagging",
        {"tagid": tag["id"], "openid_list": ["o_alice_00000000000000000000"]},
        access_token=token,
    )

    result = fake_wechat.api(
        "cgi-bin/user/info/batchget",
        {"user_list": [{"openid": "o_alice_00000000000000000000"}, {"openid": "o_bob_0000000000000000000000"}]},
        access_token=token,
    )

    alice, bob = result["user_info_list"]
    assert alice["subscribe"] == 1 and alice["unionid"] == "oU_alice" and alice["remark"] == "VIP"
    assert alice["tagid_list"] == [tag["id"]]
    assert (alice["subscribe_scene"], alice["qr_scene_str"]) == ("ADD_SCENE_QR_CODE", "spring")
    assert bob == {"subscribe": 0, "openid": "o_bob_0000000000000000000000"}


def test_batchget_rejects_unknown_openids_and_more_than_100(fake_wechat):
    openids = fake_wechat.add_users(generate=101)
    token = fake_wechat.fetch_token()

    too_many = fake_wechat.api(
        "cgi-bin/user/info/batchget", {"user_list": [{"openid": o} for o in openids]}, access_token=token
    )
    unknown = fake_wechat.api("cgi-bin/user/info", access_token=token, openid="o_nobody")

    assert too_many["errcode"] == 40032
    assert unknown["errcode"] == 40003


def test_tags_can_be_created_listed_and_read_back(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    tag = fake_wechat.api("cgi-bin/tags/create", {"tag": {"name": "广东"}}, access_token=token)["tag"]
    duplicate = fake_wechat.api("cgi-bin/tags/create", {"tag": {"name": "广东"}}, access_token=token)
    fake_wechat.api(
        "cgi-bin/tags/members/batchtagging", {"tagid": tag["id"], "openid_list": [openid]}, access_token=token
    )

    listed = fake_wechat.api("cgi-bin/tags/get", access_token=token)["tags"]
    members = fake_wechat.api("cgi-bin/user/tag/get", {"tagid": tag["id"]}, access_token=token)
    ids = fake_wechat.api("cgi-bin/tags/getidlist", {"openid": openid}, access_token=token)
    sys_tag = fake_wechat.api("cgi-bin/tags/delete", {"tag": {"id": 2}}, access_token=token)

    assert duplicate["errcode"] == 45157
    assert {"id": tag["id"], "name": "广东", "count": 1} in listed
    assert members["data"]["openid"] == [openid]
    assert ids["tagid_list"] == [tag["id"]]
    assert sys_tag["errcode"] == 45058


def test_unsubscribe_through_the_control_api_is_visible_to_the_api(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    fake_wechat.unsubscribe(openid)
    token = fake_wechat.fetch_token()

    assert fake_wechat.api("cgi-bin/user/info", access_token=token, openid=openid)["subscribe"] == 0
    assert _user_get(fake_wechat, token)["total"] == 0


# --- QR codes and menu ----------------------------------------------------------------------------------------


def test_qrcode_create_temporary_and_permanent_and_showqrcode(fake_wechat):
    token = fake_wechat.fetch_token()
    temporary = fake_wechat.api(
        "cgi-bin/qrcode/create",
        {"expire_seconds": 604800, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "expo"}}},
        access_token=token,
    )
    permanent = fake_wechat.api(
        "cgi-bin/qrcode/create",
        {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 42}}},
        access_token=token,
    )
    bad = fake_wechat.api(
        "cgi-bin/qrcode/create",
        {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100001}}},
        access_token=token,
    )
    image = urllib3.request("GET", fake_wechat.url + "cgi-bin/showqrcode", fields={"ticket": temporary["ticket"]})

    assert temporary["expire_seconds"] == 604800 and temporary["url"].startswith("http://weixin.qq.com/q/")
    assert "expire_seconds" not in permanent and permanent["ticket"]
    assert bad["errcode"] == 40053
    assert image.status == 200 and image.data.startswith(b"\x89PNG")


def test_menu_create_validates_buttons_like_wechat(fake_wechat):
    token = fake_wechat.fetch_token()
    good = {
        "button": [
            {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
            {"name": "菜单", "sub_button": [{"type": "view", "name": "搜索", "url": "http://www.soso.com/"}]},
        ]
    }
    four = {"button": [{"type": "click", "name": f"b{i}", "key": f"k{i}"} for i in range(4)]}
    six_subs = {"button": [{"name": "m", "sub_button": [{"type": "click", "name": "s", "key": "k"}] * 6}]}

    assert fake_wechat.api("cgi-bin/menu/create", good, access_token=token)["errcode"] == 0
    assert fake_wechat.api("cgi-bin/menu/create", four, access_token=token)["errcode"] == 40016
    assert fake_wechat.api("cgi-bin/menu/create", six_subs, access_token=token)["errcode"] == 40023
    assert fake_wechat.menu() == good


# --- messages and job-finish events ---------------------------------------------------------------------------


def test_template_send_is_recorded_and_reported_by_a_signed_job_finish_event(fake_wechat, wechat_callback_receiver):
    fake_wechat.configure(callback_url=wechat_callback_receiver.url, callback_delay=0)
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()

    sent = _send_template(fake_wechat, token, openid)
    [event] = wechat_callback_receiver.wait_for(1)

    assert sent["errcode"] == 0
    [call] = fake_wechat.calls(TEMPLATE)
    assert call["body"]["touser"] == openid and call["errcode"] == 0
    assert event["Event"] == "TEMPLATESENDJOBFINISH" and event["MsgType"] == "event"
    assert (event["FromUserName"], int(event["MsgID"]), event["Status"]) == (openid, sent["msgid"], "success")
    assert wechat_callback_receiver.rejected == []


def test_job_finish_events_are_encrypted_in_safe_mode(fake_wechat):
    cfg = fake_wechat.configure(aes_key=AES_KEY, callback_delay=0)
    receiver = CallbackReceiver(token=cfg["token"], aes_key=AES_KEY, appid=cfg["appid"])
    try:
        fake_wechat.configure(callback_url=receiver.url)
        openid = fake_wechat.add_users(generate=1)[0]
        sent = _send_template(fake_wechat, fake_wechat.fetch_token(), openid)
        [event] = receiver.wait_for(1)
    finally:
        receiver.close()

    query, body = receiver.requests[0]["query"], receiver.requests[0]["body"]
    assert query["encrypt_type"] == "aes" and query["msg_signature"]
    assert b"<Encrypt>" in body and b"TEMPLATESENDJOBFINISH" not in body
    assert int(event["MsgID"]) == sent["msgid"]


def test_job_finish_event_is_retried_when_the_callback_fails(fake_wechat, wechat_callback_receiver):
    fake_wechat.configure(callback_url=wechat_callback_receiver.url, callback_delay=0, callback_retry_delay=0.1)
    wechat_callback_receiver.fail_next = 2
    openid = fake_wechat.add_users(generate=1)[0]
    _send_template(fake_wechat, fake_wechat.fetch_token(), openid)

    assert len(wechat_callback_receiver.wait_for(1)) == 1
    assert len(wechat_callback_receiver.requests) == 3
    deadline = time.monotonic() + 10
    while not fake_wechat.deliveries() and time.monotonic() < deadline:
        time.sleep(0.05)
    [delivery] = fake_wechat.deliveries()
    assert (delivery["attempts"], delivery["ok"]) == (3, 1)


def test_template_failure_status_is_configurable(fake_wechat, wechat_callback_receiver):
    fake_wechat.configure(
        callback_url=wechat_callback_receiver.url,
        callback_delay=0,
        template_failure_rates={"failed:user block": 1.0},
    )
    openid = fake_wechat.add_users(generate=1)[0]
    _send_template(fake_wechat, fake_wechat.fetch_token(), openid)

    [event] = wechat_callback_receiver.wait_for(1)
    assert event["Status"] == "failed:user block"


def test_template_send_to_someone_not_following_gets_43004(fake_wechat):
    fake_wechat.add_users([{"openid": "o_left_000000000000000000000", "subscribe": 0}])
    token = fake_wechat.fetch_token()

    assert _send_template(fake_wechat, token, "o_left_000000000000000000000")["errcode"] == 43004
    assert _send_template(fake_wechat, token, "o_never_seen")["errcode"] == 40003


def test_mass_send_rejects_a_duplicate_clientmsgid_and_reports_the_job(fake_wechat, wechat_callback_receiver):
    fake_wechat.configure(callback_url=wechat_callback_receiver.url, callback_delay=0)
    openids = fake_wechat.add_users(generate=3)
    fake_wechat.unsubscribe(openids[2])
    token = fake_wechat.fetch_token()
    media_id = _draft(fake_wechat, token)
    body = {"touser": openids, "msgtype": "mpnews", "mpnews": {"media_id": media_id}, "clientmsgid": "push-7"}

    first = fake_wechat.api("cgi-bin/message/mass/send", body, access_token=token)
    again = fake_wechat.api("cgi-bin/message/mass/send", body, access_token=token)
    [event] = wechat_callback_receiver.wait_for(1)

    assert first["errcode"] == 0 and first["msg_data_id"]
    assert (again["errcode"], again["msg_id"]) == (45065, first["msg_id"])
    assert event["Event"] == "MASSSENDJOBFINISH" and int(event["MsgID"]) == first["msg_id"]
    assert (event["TotalCount"], event["FilterCount"], event["SentCount"], event["ErrorCount"]) == ("3", "2", "2", "0")
    status = fake_wechat.api("cgi-bin/message/mass/get", {"msg_id": first["msg_id"]}, access_token=token)
    assert status == {"msg_id": first["msg_id"], "msg_status": "SEND_SUCCESS"}


def test_sendall_by_tag_reaches_the_tag_members(fake_wechat, wechat_callback_receiver):
    fake_wechat.configure(callback_url=wechat_callback_receiver.url, callback_delay=0)
    openids = fake_wechat.add_users(generate=4)
    token = fake_wechat.fetch_token()
    tag = fake_wechat.api("cgi-bin/tags/create", {"tag": {"name": "buyers"}}, access_token=token)["tag"]
    fake_wechat.api(
        "cgi-bin/tags/members/batchtagging", {"tagid": tag["id"], "openid_list": openids[:2]}, access_token=token
    )

    sent = fake_wechat.api(
        "cgi-bin/message/mass/sendall",
        {"filter": {"is_to_all": False, "tag_id": tag["id"]}, "msgtype": "text", "text": {"content": "hi"}},
        access_token=token,
    )
    [event] = wechat_callback_receiver.wait_for(1)

    assert sent["errcode"] == 0 and "msg_data_id" not in sent
    assert event["SentCount"] == "2"


def test_custom_send_checks_the_recipient_and_message(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.interact(openid)  # they wrote: the customer-service window is open
    ok = fake_wechat.api(
        "cgi-bin/message/custom/send",
        {"touser": openid, "msgtype": "text", "text": {"content": "hi"}},
        access_token=token,
    )
    bad_type = fake_wechat.api(
        "cgi-bin/message/custom/send", {"touser": openid, "msgtype": "fax", "fax": {}}, access_token=token
    )
    assert (ok["errcode"], bad_type["errcode"]) == (0, 40008)


def _custom(fake_wechat, token: str, openid: str) -> int:
    body = {"touser": openid, "msgtype": "text", "text": {"content": "hi"}}
    return fake_wechat.api("cgi-bin/message/custom/send", body, access_token=token)["errcode"]


def test_the_customer_service_window_opens_on_what_wechat_counts_and_only_then(fake_wechat):
    """WeChat's rules (客服消息下发规则): a message allows 5 within 48 hours; a follow, a scan or a menu CLICK 3 within
    a minute; an automatic LOCATION report, a VIEW and nothing at all open no window (45015)."""
    import time

    wrote, clicked, located, viewed, silent, old = fake_wechat.add_users(generate=6)
    token = fake_wechat.fetch_token()
    now = time.time()
    fake_wechat.interact(wrote, "text")
    fake_wechat.interact(clicked, "event", event="CLICK")
    fake_wechat.interact(located, "event", event="LOCATION")
    fake_wechat.interact(viewed, "event", event="VIEW")
    fake_wechat.interact(old, "text", at=now - 49 * 3600)
    fake_wechat.interact(old, "event", event="subscribe", at=now - 120)  # a follow's minute is over

    assert [_custom(fake_wechat, token, wrote) for _ in range(6)] == [0, 0, 0, 0, 0, 45047]
    assert [_custom(fake_wechat, token, clicked) for _ in range(4)] == [0, 0, 0, 45047]
    assert {_custom(fake_wechat, token, o) for o in (located, viewed, silent, old)} == {45015}
    assert fake_wechat.window(located) == {"open": False, "remaining": 0, "closes_at": None, "errcode": 45015}
    fake_wechat.interact(wrote, "image")  # a new message: a new window of 5
    assert fake_wechat.window(wrote)["remaining"] == 5
    assert fake_wechat.count("/cgi-bin/message/custom/send", errcode=0) == 8


def test_the_window_can_be_switched_off_and_bad_interactions_are_refused(fake_wechat):
    from wechat_crm.wechat.fake.control import FakeWeChatError

    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.configure(enforce_cs_window=False)
    assert _custom(fake_wechat, token, openid) == 0
    with pytest.raises(FakeWeChatError, match="MsgType"):
        fake_wechat.interactions(openid, {"Event": "CLICK"})
