"""The fake WeChat server, run as a real process and spoken to over HTTP: injected faults, WeChat's quotas, its
control API, and its job-finish events reaching our callback (the API itself: test_fake_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import urllib3

from tests.fixtures.fake_wechat import ROOT

from .fake_api import AES_KEY, TEMPLATE, _send_template, _user_get

# --- faults and quotas ----------------------------------------------------------------------------------------


def test_injected_errcode_hits_only_its_path_and_only_so_many_times(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.configure(faults=[{"path": TEMPLATE, "errcode": 45009, "times": 2}])

    codes = [_send_template(fake_wechat, token, openid)["errcode"] for _ in range(3)]
    other = fake_wechat.api("cgi-bin/user/info", access_token=token, openid=openid)

    assert codes == [45009, 45009, 0]
    assert other["subscribe"] == 1
    assert fake_wechat.count(TEMPLATE, errcode=45009) == 2


def test_error_rates_inject_wechat_errors(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.configure(errcode_rates={"45011": 1.0})

    assert _send_template(fake_wechat, token, openid)["errcode"] == 45011


def test_injected_5xx_answers_with_an_http_error(fake_wechat):
    token = fake_wechat.fetch_token()
    fake_wechat.configure(error_5xx_rate=1.0)
    resp = urllib3.request("GET", fake_wechat.url + "cgi-bin/user/get", fields={"access_token": token}, retries=False)

    assert resp.status in (500, 502, 503)
    assert fake_wechat.calls("/cgi-bin/user/get")[0]["status"] == resp.status


def test_injected_timeout_processes_the_call_but_answers_too_late(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.configure(faults=[{"path": TEMPLATE, "timeout": 1.5, "times": 1}])

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        urllib3.request(
            "POST",
            f"{fake_wechat.url}cgi-bin/message/template/send?access_token={token}",
            json={"touser": openid, "template_id": "T", "data": {}},
            timeout=0.3,
            retries=False,
        )

    [call] = fake_wechat.calls(TEMPLATE)
    assert call["errcode"] == 0 and call["fault"] == "timeout_answer"


def test_injected_timeout_in_drop_mode_closes_the_connection_unanswered(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.configure(faults=[{"path": TEMPLATE, "timeout": 0.2, "mode": "drop", "times": 1}])

    with pytest.raises(urllib3.exceptions.ProtocolError):
        urllib3.request(
            "POST",
            f"{fake_wechat.url}cgi-bin/message/template/send?access_token={token}",
            json={"touser": openid, "template_id": "T", "data": {}},
            timeout=5,
            retries=False,
        )
    assert fake_wechat.calls(TEMPLATE)[0]["fault"] == "timeout_drop"


def test_daily_quota_turns_into_45009(fake_wechat):
    openid = fake_wechat.add_users(generate=1)[0]
    token = fake_wechat.fetch_token()
    fake_wechat.configure(quotas={TEMPLATE: 2})

    codes = [_send_template(fake_wechat, token, openid)["errcode"] for _ in range(3)]
    assert codes == [0, 0, 45009]


def test_per_minute_limit_turns_into_45011(fake_wechat):
    token = fake_wechat.fetch_token()
    fake_wechat.configure(minute_limits={"/cgi-bin/user/get": 2})
    for _attempt in range(2):  # a second try only if the three calls straddled a minute boundary
        fake_wechat.clear_calls()
        minute = time.time() // 60
        codes = [_user_get(fake_wechat, token).get("errcode", 0) for _ in range(3)]
        if time.time() // 60 == minute:
            break
        time.sleep(0.5)
    assert codes == [0, 0, 45011]


def test_mass_send_quota_turns_into_45028(fake_wechat):
    openids = fake_wechat.add_users(generate=2)
    token = fake_wechat.fetch_token()
    fake_wechat.configure(quotas={"/cgi-bin/message/mass/send": 1})
    body = {"touser": openids, "msgtype": "text", "text": {"content": "hi"}}

    codes = [fake_wechat.api("cgi-bin/message/mass/send", body, access_token=token)["errcode"] for _ in range(2)]
    assert codes == [0, 45028]


# --- control API ----------------------------------------------------------------------------------------------


def test_reset_brings_everything_back_to_the_start(fake_wechat):
    fake_wechat.add_users(generate=3)
    token = fake_wechat.fetch_token()
    fake_wechat.configure(errcode_rates={"45009": 1.0})

    fake_wechat.reset()

    assert fake_wechat.count() == 0
    assert fake_wechat.users() == []
    assert fake_wechat.config()["errcode_rates"] == {}
    assert _user_get(fake_wechat, token)["errcode"] == 40001


def test_calls_can_be_counted_filtered_and_cleared(fake_wechat):
    token = fake_wechat.fetch_token()
    for _ in range(3):
        _user_get(fake_wechat, token)

    assert fake_wechat.count("/cgi-bin/user/get") == 3
    assert fake_wechat.count() == 4
    fake_wechat.clear_calls()
    assert fake_wechat.count() == 0


def test_bad_config_is_refused_with_a_message(fake_wechat):
    resp = urllib3.request("POST", fake_wechat.url + "_fake/config", json={"error_5xx_rate": 3})
    unknown = urllib3.request("POST", fake_wechat.url + "_fake/config", json={"no_such_key": 1})

    assert resp.status == 400 and "between 0 and 1" in resp.json()["error"]
    assert unknown.status == 400


def test_command_refuses_a_bad_aes_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "fake_wechat", "--port", "1", "--aes-key", "short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.test"},
        timeout=60,
    )
    assert result.returncode != 0
    assert "43 characters" in result.stderr


def test_the_fake_also_runs_in_a_thread_of_the_test_process():
    from wechat_crm.wechat.fake.control import FakeWeChat
    from wechat_crm.wechat.fake.server import serve_in_thread

    url, server = serve_in_thread(config={"appid": "wx_thread", "secret": "s3cret"})
    try:
        fake = FakeWeChat(url)
        token = fake.fetch_token()
        fake.add_users(generate=2)
        page = _user_get(fake, token)
        assert page["count"] == 2
        assert [c["path"] for c in fake.calls(limit=1)] == ["/cgi-bin/stable_token"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("safe_mode", [False, True], ids=["plain", "safe"])
def test_job_finish_events_reach_our_callback(live_server, fake_wechat, settings, safe_mode):
    from accounts.models import Interaction, Subscriber

    if safe_mode:
        settings.WECHAT_ENCODING_AES_KEY = AES_KEY
        fake_wechat.configure(aes_key=AES_KEY)
    fake_wechat.configure(callback_url=live_server.url + "/wechat/callback/", callback_delay=0)
    openid = fake_wechat.add_users(generate=1)[0]
    Subscriber.objects.create(openid=openid)  # a report is stored for a subscriber we hold (it never creates one)
    sent = _send_template(fake_wechat, fake_wechat.fetch_token(), openid)

    deadline = time.monotonic() + 15
    while not fake_wechat.deliveries() and time.monotonic() < deadline:
        time.sleep(0.05)

    [delivery] = fake_wechat.deliveries()
    assert (delivery["ok"], delivery["http_status"]) == (1, 200)
    stored = Interaction.objects.get(msg_id=str(sent["msgid"]))
    assert (stored.kind, stored.status) == ("templatesendjobfinish", "success")
