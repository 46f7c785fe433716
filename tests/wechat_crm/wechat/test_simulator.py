"""The subscriber simulator plays WeChat users against a callback URL, signed (and encrypted) like WeChat."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.fixtures.fake_wechat import ROOT, CallbackReceiver, free_port
from wechat_crm.wechat.fake.simulator import Simulator


def _simulate(receiver, *args: str) -> dict:
    out = StringIO()
    call_command("simulate_subscribers", "--callback", receiver.url, "--fast", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def _kind(message: dict) -> str:
    return message["Event"] if message["MsgType"] == "event" else message["MsgType"]


def test_simulated_people_follow_talk_click_and_leave(wechat_callback_receiver, fake_wechat):
    summary = _simulate(
        wechat_callback_receiver, "--count", "40", "--channels", "spring,expo", "--seed", "7",
        "--fake-wechat", fake_wechat.url,
    )  # fmt: skip

    messages = wechat_callback_receiver.messages
    kinds = Counter(_kind(m) for m in messages)
    assert wechat_callback_receiver.rejected == []
    assert (summary["sent"], summary["answered"], summary["failed"]) == (len(messages), len(messages), 0)
    assert kinds["subscribe"] == 40
    assert {"text", "image", "location", "CLICK", "VIEW", "SCAN", "unsubscribe"} <= set(kinds)
    channel_keys = {m.get("EventKey") for m in messages if _kind(m) == "subscribe" and m.get("EventKey")}
    assert channel_keys == {"qrscene_spring", "qrscene_expo"}
    assert {m["EventKey"] for m in messages if _kind(m) == "SCAN"} <= {"spring", "expo"}
    msgids = [m["MsgId"] for m in messages if "MsgId" in m]
    assert len(msgids) == len(set(msgids)) == kinds["text"] + kinds["image"] + kinds["location"]


def test_each_person_follows_first_and_leaves_last(wechat_callback_receiver):
    _simulate(wechat_callback_receiver, "--count", "30", "--seed", "3", "--concurrency", "4")

    by_person = defaultdict(list)
    for message in wechat_callback_receiver.messages:
        by_person[message["FromUserName"]].append(message)
    assert len(by_person) == 30
    for messages in by_person.values():
        kinds = [_kind(m) for m in messages]
        assert kinds[0] == "subscribe"
        assert "unsubscribe" not in kinds[:-1]
        times = [int(m["CreateTime"]) for m in messages]
        assert times == sorted(times) and len(set(times)) == len(times)


def test_follows_and_unfollows_are_registered_with_the_fake_server(wechat_callback_receiver, fake_wechat):
    _simulate(wechat_callback_receiver, "--count", "25", "--seed", "11", "--fake-wechat", fake_wechat.url,
              "--channels", "spring")  # fmt: skip

    left = {m["FromUserName"] for m in wechat_callback_receiver.messages if _kind(m) == "unsubscribe"}
    users = {u["openid"]: u for u in fake_wechat.users()}
    assert len(users) == 25 and left
    assert {o for o, u in users.items() if not u["subscribe"]} == left
    by_channel = [
        m["FromUserName"]
        for m in wechat_callback_receiver.messages
        if _kind(m) == "subscribe" and m.get("EventKey") == "qrscene_spring"
    ]
    assert by_channel and all(users[o]["qr_scene_str"] == "spring" for o in by_channel)


def test_channel_follows_carry_the_ticket_of_the_channel_qr_code(wechat_callback_receiver, fake_wechat):
    token = fake_wechat.fetch_token()
    qrcode = fake_wechat.api(
        "cgi-bin/qrcode/create",
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "expo"}}},
        access_token=token,
    )
    _simulate(wechat_callback_receiver, "--count", "10", "--seed", "5", "--fake-wechat", fake_wechat.url,
              "--channels", "expo")  # fmt: skip

    tickets = {m["Ticket"] for m in wechat_callback_receiver.messages if m.get("EventKey") == "qrscene_expo"}
    assert tickets == {qrcode["ticket"]}


def test_menu_clicks_use_the_keys_of_the_menu_on_the_fake_server(wechat_callback_receiver, fake_wechat):
    token = fake_wechat.fetch_token()
    fake_wechat.api(
        "cgi-bin/menu/create",
        {"button": [{"type": "click", "name": "新品", "key": "NEW_ARRIVALS"},
                    {"type": "view", "name": "商城", "url": "https://shop.example.com/"}]},
        access_token=token,
    )  # fmt: skip
    _simulate(wechat_callback_receiver, "--count", "30", "--seed", "9", "--fake-wechat", fake_wechat.url)

    messages = wechat_callback_receiver.messages
    assert {m["EventKey"] for m in messages if _kind(m) == "CLICK"} == {"NEW_ARRIVALS"}
    assert {m["EventKey"] for m in messages if _kind(m) == "VIEW"} == {"https://shop.example.com/"}


def test_safe_mode_messages_are_encrypted_and_decrypt_with_the_key(settings):
    aes_key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    receiver = CallbackReceiver(token="tok3n", aes_key=aes_key, appid="wx_safe")
    try:
        summary = Simulator(
            callback=receiver.url, count=10, token="tok3n", aes_key=aes_key, appid="wx_safe", fast=True, seed=1
        ).run()
    finally:
        receiver.close()

    assert receiver.rejected == []
    assert summary.sent == len(receiver.messages) and summary.failed == 0
    assert all(r["query"]["encrypt_type"] == "aes" and b"<Encrypt>" in r["body"] for r in receiver.requests)


def test_a_wrong_token_is_rejected_by_the_receiver_and_counted_as_failed(wechat_callback_receiver):
    summary = _simulate(wechat_callback_receiver, "--count", "3", "--token", "not-the-token", "--seed", "1")

    assert summary["failed"] == summary["sent"] > 0
    assert wechat_callback_receiver.messages == []


def test_replies_are_counted(wechat_callback_receiver):
    wechat_callback_receiver.reply = b"<xml><MsgType><![CDATA[text]]></MsgType></xml>"
    summary = _simulate(wechat_callback_receiver, "--count", "3", "--seed", "2")

    assert summary["replied"] == summary["sent"] > 0


def test_unreachable_callback_is_an_error():
    with pytest.raises(CommandError, match="unreachable"):
        call_command("simulate_subscribers", "--count", "1", "--callback", f"http://127.0.0.1:{free_port()}/cb/")


def test_command_exits_non_zero_with_a_message_when_the_callback_is_unreachable():
    result = subprocess.run(
        [sys.executable, "manage.py", "simulate_subscribers", "--count", "1", "--fast",
         "--callback", f"http://127.0.0.1:{free_port()}/wechat/callback/"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.test"},
    )  # fmt: skip

    assert result.returncode != 0
    assert "unreachable" in result.stderr


def test_plan_is_repeatable_for_a_seed():
    def plan(seed):
        sim = Simulator(callback="http://127.0.0.1:9/", count=20, token="t", seed=seed, channels=["a"], fast=True)
        return [(s.openid, s.kind, s.fields.get("EventKey")) for s in sim.plan()]

    assert plan(4) == plan(4)
    assert plan(4) != plan(5)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simulation_against_our_callback_stores_every_message_once(live_server, fake_wechat, settings):
    from accounts.models import Interaction, Subscriber

    summary = Simulator(
        callback=live_server.url + "/wechat/callback/",
        count=15,
        token=settings.WECHAT_TOKEN,
        aes_key=settings.WECHAT_ENCODING_AES_KEY,
        appid=settings.WECHAT_APP_ID,
        fake_wechat=fake_wechat.url,
        channels=["spring"],
        fast=True,
        seed=21,
    ).run()

    assert (summary.failed, summary.warnings) == (0, [])
    assert Interaction.objects.count() == summary.sent
    assert Subscriber.objects.count() == 15
    following = set(Subscriber.objects.filter(is_following=True).values_list("openid", flat=True))
    assert following == {u["openid"] for u in fake_wechat.users(subscribe=1)}


def test_people_answer_the_notice_popup_and_the_fake_knows_what_they_accepted(wechat_callback_receiver, fake_wechat):
    _simulate(wechat_callback_receiver, "--count", "30", "--seed", "5", "--fake-wechat", fake_wechat.url,
              "--notice-templates", "tmplA,tmplB", "--notice-share", "1", "--unfollow-share", "0")  # fmt: skip

    accepted: dict[str, set[str]] = defaultdict(set)
    kinds = Counter()
    for m in wechat_callback_receiver.messages:
        kind = _kind(m)
        kinds[kind] += 1
        if kind == "subscribe_msg_popup_event":
            items = m["SubscribeMsgPopupEvent"]["List"]
            for item in items if isinstance(items, list) else [items]:
                if item["SubscribeStatusString"] == "accept":
                    accepted[m["FromUserName"]].add(item["TemplateId"])
        elif kind == "subscribe_msg_change_event":
            items = m["SubscribeMsgChangeEvent"]["List"]
            for item in items if isinstance(items, list) else [items]:
                accepted[m["FromUserName"]].discard(item["TemplateId"])
    assert kinds["subscribe_msg_popup_event"] == 30 and kinds["subscribe_msg_change_event"] > 0
    for openid in {m["FromUserName"] for m in wechat_callback_receiver.messages}:
        held = {t for t, state in fake_wechat.notices(openid).items() if state["accepted"]}
        assert held == accepted[openid]
