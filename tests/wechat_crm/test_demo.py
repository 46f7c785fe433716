"""What `make run` shows an operator: a demo login, content, a segment, a campaign whose channels have QR codes
from the (fake) WeChat server, and followers who came through those channels."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.models import Subscriber
from campaigns.models import Campaign, Channel, ChannelTouch
from content.models import Article, Segment
from content.services import segments
from tests.helpers import wait_for
from wechat_crm.demo import CHANNELS


@pytest.mark.django_db
def test_demo_setup_prints_the_login_and_loads_published_content_twice_without_duplicates(monkeypatch, settings):
    settings.WECHAT_API_BASE_URL = "http://127.0.0.1:8801/"  # the demo's fake WeChat
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "letmein-demo")
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    call_command("demo_setup", stdout=io.StringIO())

    assert "letmein-demo" in out.getvalue() and "/admin/" in out.getvalue()
    assert get_user_model().objects.get(username="admin").check_password("letmein-demo")
    articles = Article.objects.filter(slug__startswith="demo-")
    assert articles.count() == 3 and all(a.status == "published" and a.topics.exists() for a in articles)
    (segment,) = Segment.objects.all()
    segments.rules_validate(segment.rules)
    assert Campaign.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_demo_traffic_creates_channels_with_qr_codes_and_followers_who_scanned_them(
    live_server, fake_wechat, celery_worker
):
    call_command("demo_setup", stdout=io.StringIO())
    call_command("demo_traffic", web=live_server.url, count=12, duration=0, wait=10, exit=True, stdout=io.StringIO())
    call_command("demo_traffic", web=live_server.url, count=0, wait=10, exit=True, stdout=io.StringIO())  # no doubles

    channels = Channel.objects.order_by("scene_str")
    assert sorted(c.scene_str for c in channels) == sorted(scene for scene, *_rest in CHANNELS)
    assert all(c.ticket and c.url for c in channels)
    assert {c.pk for c in Campaign.objects.get().channels.all()} == {c.pk for c in channels}
    assert Subscriber.objects.count() == 12
    # Some followed through a demo QR code; the worker attributes them to the channel.
    wait_for(lambda: ChannelTouch.objects.filter(channel__in=channels).exists(), timeout=60)
    # One article published on WeChat and one news push sent to every follower, each once.
    assert fake_wechat.count("/cgi-bin/freepublish/submit") == 1
    wait_for(lambda: fake_wechat.count("/cgi-bin/message/mass/sendall") == 1, timeout=60)
    [news] = fake_wechat.calls("/cgi-bin/message/mass/sendall")
    assert news["body"]["msgtype"] == "mpnews" and news["body"]["filter"] == {"is_to_all": True}


EXTRA_ARGS = {"demo_traffic": ["--exit"], "simulate_subscribers": ["--count", "1"]}


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["demo_setup", "demo_traffic", "fake_wechat", "simulate_subscribers"])
def test_the_demo_commands_and_the_fake_server_refuse_a_real_wechat_api(settings, command):
    from django.core.management.base import CommandError

    settings.WECHAT_API_BASE_URL = "https://api.weixin.qq.com/"
    with pytest.raises(CommandError, match="not the fake WeChat server"):
        call_command(command, *EXTRA_ARGS.get(command, []), stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="admin").exists()


@pytest.mark.parametrize("command", ["demo_setup", "demo_traffic", "fake_wechat", "simulate_subscribers"])
def test_the_demo_commands_and_the_fake_server_refuse_the_production_settings(command):
    """Run as an operator would, with the production settings and real values: refused with a message."""
    import subprocess
    import sys

    from tests.wechat_crm.test_production import ROOT, real_values

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    env.update(
        real_values(),
        DJANGO_SETTINGS_MODULE="wechat_crm.settings.production",
        WECHAT_API_BASE_URL="http://127.0.0.1:8801/",
        DJANGO_LANGUAGE_CODE="en",  # the refusal in the source's English (the product defaults to Chinese)
    )
    result = subprocess.run(
        [sys.executable, "manage.py", command, *EXTRA_ARGS.get(command, [])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not for the production settings" in result.stderr, result.stderr[-500:]
