"""The client against the fake WeChat server, over HTTP: errors by meaning, one refresh on a refused token,
pages of template messages."""

from __future__ import annotations

import pytest

from wechat_crm.wechat.client import get_client
from wechat_crm.wechat.errors import (
    Outcome,
    WeChatDuplicate,
    WeChatLocalRateLimited,
    WeChatNotFollowing,
    WeChatOutcomeUnknown,
    WeChatOutsideWindow,
    WeChatRateLimited,
    classify,
)

TEMPLATE = "/cgi-bin/message/template/send"


def _template(openid: str) -> dict:
    return {
        "touser": openid,
        "template_id": "tpl_news",
        "url": "https://example.com/",
        "data": {"first": {"value": "Hi"}},
    }


def _send(openid: str):
    return get_client().message.send_template(openid, "tpl_news", {"first": {"value": "Hi"}})


def test_a_refused_token_is_refreshed_once_and_the_call_retried_once(fake):
    [openid] = fake.add_users(generate=1)
    client = get_client()
    first = client.tokens.get()
    fake.invalidate_tokens()  # every issued token is now stale (40001)

    assert client.user.get(openid)["openid"] == openid

    fetches = fake.calls("/cgi-bin/stable_token")
    assert [c["body"].get("force_refresh", False) for c in fetches] == [False, True]
    infos = fake.calls("/cgi-bin/user/info")
    assert [c["errcode"] for c in infos] == [40001, 0]
    assert infos[0]["query"]["access_token"] == first != infos[1]["query"]["access_token"]


def test_a_token_superseded_from_outside_is_replaced_once(fake):
    fake.configure(token_grace=0)
    [openid] = fake.add_users(generate=1)
    client = get_client()
    client.tokens.get()
    # Another system fetches by force: with no grace period, our token stops working at once.
    cfg = fake.config()
    fake.api(
        "cgi-bin/stable_token",
        {"grant_type": "client_credential", "appid": cfg["appid"], "secret": cfg["secret"], "force_refresh": True},
    )

    assert client.user.get(openid)["openid"] == openid
    assert client.user.get(openid)["openid"] == openid
    assert fake.count("/cgi-bin/stable_token") == 3  # ours, theirs, our one forced refresh
    assert [c["errcode"] for c in fake.calls("/cgi-bin/user/info")] == [40001, 0, 0]


def test_an_expired_token_is_refreshed_once(fake):
    [openid] = fake.add_users(generate=1)
    client = get_client()
    client.tokens.get()
    fake.expire_tokens()  # 42001 on use
    assert client.user.get(openid)["openid"] == openid
    assert [c["errcode"] for c in fake.calls("/cgi-bin/user/info")] == [42001, 0]
    assert fake.count("/cgi-bin/stable_token") == 2


def test_daily_and_minute_quotas_raise_rate_limited(fake):
    [openid] = fake.add_users(generate=1)
    fake.configure(
        faults=[
            {"path": TEMPLATE, "errcode": 45009, "times": 1},
            {"path": TEMPLATE, "errcode": 45011, "times": 1},
        ]
    )
    with pytest.raises(WeChatRateLimited) as daily:
        _send(openid)
    with pytest.raises(WeChatRateLimited) as minute:
        _send(openid)
    assert {daily.value.errcode, minute.value.errcode} == {45009, 45011}
    assert classify(minute.value).outcome is Outcome.RETRY_LATER
    assert _send(openid)["errcode"] == 0
    assert fake.count(TEMPLATE, errcode=0) == 1


def test_unfollowed_subscriber_raises_not_following(fake):
    [openid] = fake.add_users(generate=1)
    fake.unsubscribe(openid)
    with pytest.raises(WeChatNotFollowing) as info:
        get_client().message.send_text(openid, "hello")
    assert classify(info.value).outcome is Outcome.NOT_FOLLOWING


def test_outside_the_service_window_is_its_own_outcome(fake):
    [openid] = fake.add_users(generate=1)
    fake.configure(faults=[{"path": "/cgi-bin/message/custom/send", "errcode": 45015, "times": 1}])
    with pytest.raises(WeChatOutsideWindow) as info:
        get_client().message.send_text(openid, "hello")
    assert classify(info.value).outcome is Outcome.OUTSIDE_WINDOW


def test_repeated_clientmsgid_counts_as_already_sent(fake):
    openids = fake.add_users(generate=2)
    client = get_client()
    client.message.send_mass_text(openids, "hello", client_msg_id="push-1-batch-1")
    with pytest.raises(WeChatDuplicate) as info:
        client.message.send_mass_text(openids, "hello", client_msg_id="push-1-batch-1")
    assert classify(info.value).outcome is Outcome.SENT_ALREADY


def test_5xx_is_retried_then_succeeds(fake):
    [openid] = fake.add_users(generate=1)
    fake.configure(faults=[{"path": TEMPLATE, "status": 503, "times": 2}])
    assert _send(openid)["errcode"] == 0
    assert [c["status"] for c in fake.calls(TEMPLATE)] == [503, 503, 200]
    assert fake.count(TEMPLATE, errcode=0) == 1


def test_a_send_that_times_out_is_unknown_and_not_resent(fake, settings):
    settings.WECHAT_HTTP_TIMEOUT = 0.5
    [openid] = fake.add_users(generate=1)
    fake.configure(faults=[{"path": TEMPLATE, "timeout": 2, "times": 1}])
    with pytest.raises(WeChatOutcomeUnknown) as info:
        _send(openid)
    assert classify(info.value).outcome is Outcome.UNKNOWN
    assert fake.count(TEMPLATE) == 1


def test_a_read_that_times_out_is_retried(fake, settings):
    settings.WECHAT_HTTP_TIMEOUT = 0.5
    [openid] = fake.add_users(generate=1)
    fake.configure(faults=[{"path": "/cgi-bin/user/info", "timeout": 2, "times": 1}])
    assert get_client().user.get(openid)["openid"] == openid
    assert fake.count("/cgi-bin/user/info") == 2


def test_a_page_of_template_messages_gets_one_result_each(fake):
    openids = fake.add_users(generate=20)
    gone = openids[3]
    fake.unsubscribe(gone)
    fake.configure(faults=[{"path": TEMPLATE, "touser": openids[7], "errcode": 45011, "times": 1}])

    results = get_client().send_template_many([_template(o) for o in openids], threads=4)

    assert len(results) == 20
    by_outcome: dict[Outcome, int] = {}
    for result in results:
        by_outcome[result.outcome] = by_outcome.get(result.outcome, 0) + 1
    assert results[3].outcome is Outcome.NOT_FOLLOWING
    assert results[7].outcome is Outcome.RETRY_LATER
    assert by_outcome == {Outcome.SENT: 18, Outcome.NOT_FOLLOWING: 1, Outcome.RETRY_LATER: 1}
    sent = {r.msgid for r in results if r.ok}
    assert len(sent) == 18 and None not in sent
    assert fake.count(TEMPLATE, errcode=0) == 18


def test_qrcode_create_and_image_go_to_the_fake(fake):
    client = get_client()
    ticket = client.qrcode.create(
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "spring"}}}
    )
    assert client.qrcode.get_url(ticket).startswith(fake.url)
    image = client.qrcode.show(ticket)
    assert image.status_code == 200 and image.content


def test_a_page_takes_its_slots_from_the_shared_rate_limit(fake, settings):
    settings.WECHAT_RATE_LIMITS = {**settings.WECHAT_RATE_LIMITS, "template": (5.0, 5)}
    settings.WECHAT_RATE_LIMIT_MAX_WAIT = 0.3
    openids = fake.add_users(generate=12)

    results = get_client().send_template_many([_template(o) for o in openids], threads=1)

    # A burst of 5 goes out; the next slot is a second away, beyond the wait allowed: the rest is retried later
    # and never reaches WeChat.
    assert [r.outcome for r in results] == [Outcome.SENT] * 5 + [Outcome.RETRY_LATER] * 7
    assert all(isinstance(r.error, WeChatLocalRateLimited) for r in results[5:])
    assert fake.count(TEMPLATE) == 5
