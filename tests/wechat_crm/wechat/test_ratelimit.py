"""The outbound rate limit: a token bucket per API group in Redis, shared by every process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wechat_crm.wechat import ratelimit
from wechat_crm.wechat.errors import Outcome, WeChatLocalRateLimited, classify

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def clean_buckets(settings):
    assert settings.REDIS_URL, "these tests need REDIS_URL"
    client = ratelimit.redis_client()

    def clear():
        for key in client.scan_iter("wechat:ratelimit:*"):
            client.delete(key)
        ratelimit._local_buckets.clear()
        ratelimit._redis_down_until = 0.0

    clear()
    yield
    clear()


def test_burst_is_granted_then_callers_wait_their_turn(settings):
    settings.WECHAT_RATE_LIMITS = {"template": (10.0, 5), "default": (0, 1)}
    assert [ratelimit.reserve("template") for _ in range(5)] == [0.0] * 5
    waits = [ratelimit.reserve("template") for _ in range(3)]
    # Each later caller is told to wait one more slot (0.1 s at 10/s), give or take the time the calls took.
    assert 0 < waits[0] <= 0.1
    assert waits[0] < waits[1] < waits[2] <= 0.3


def test_wait_beyond_the_bound_raises_without_reserving(settings):
    settings.WECHAT_RATE_LIMITS = {"mass": (1.0, 1), "default": (0, 1)}
    ratelimit.reserve("mass", max_wait=0.5)
    with pytest.raises(WeChatLocalRateLimited) as info:
        ratelimit.reserve("mass", max_wait=0.5)
    assert 0.5 < info.value.retry_after <= 1.0
    assert classify(info.value).outcome is Outcome.RETRY_LATER
    # The refused call reserved nothing: the next one is told the same wait, not twice as long.
    with pytest.raises(WeChatLocalRateLimited) as again:
        ratelimit.reserve("mass", max_wait=0.5)
    assert again.value.retry_after <= info.value.retry_after


def test_a_big_push_does_not_use_up_the_budget_of_replies(settings):
    settings.WECHAT_RATE_LIMITS = {"template": (1.0, 3), "custom": (1.0, 3), "default": (0, 1)}
    for _ in range(3):
        ratelimit.reserve("template", max_wait=0)
    with pytest.raises(WeChatLocalRateLimited):
        ratelimit.reserve("template", max_wait=0)
    assert ratelimit.reserve("custom", max_wait=0) == 0.0


def test_rate_zero_means_unlimited(settings):
    settings.WECHAT_RATE_LIMITS = {"default": (0, 1)}
    assert all(ratelimit.reserve("user", max_wait=0) == 0.0 for _ in range(1000))


def test_acquire_sleeps_until_the_slot(settings):
    settings.WECHAT_RATE_LIMITS = {"template": (20.0, 1), "default": (0, 1)}
    ratelimit.acquire("template")
    ratelimit.acquire("template")
    # The bucket is empty again right after the second call: it waited for its slot instead of borrowing one.
    with pytest.raises(WeChatLocalRateLimited):
        ratelimit.reserve("template", max_wait=0)


def test_without_redis_each_process_has_its_own_bucket(settings):
    settings.REDIS_URL = ""
    settings.WECHAT_RATE_LIMITS = {"template": (1.0, 2), "default": (0, 1)}
    ratelimit.reserve("template", max_wait=0)
    ratelimit.reserve("template", max_wait=0)
    with pytest.raises(WeChatLocalRateLimited):
        ratelimit.reserve("template", max_wait=0)


def test_unreachable_redis_falls_back_to_a_local_bucket(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.WECHAT_RATE_LIMITS = {"custom": (1.0, 1), "default": (0, 1)}
    assert ratelimit.reserve("custom", max_wait=0) == 0.0
    with pytest.raises(WeChatLocalRateLimited):
        ratelimit.reserve("custom", max_wait=0)


@pytest.mark.parametrize(
    ("endpoint", "group"),
    [
        ("cgi-bin/message/template/send", "template"),
        ("cgi-bin/message/custom/send", "custom"),
        ("cgi-bin/message/mass/sendall", "mass"),
        ("cgi-bin/user/info/batchget", "user"),
        ("cgi-bin/tags/members/batchtagging", "user"),
        ("cgi-bin/qrcode/create", "default"),
    ],
)
def test_endpoints_belong_to_groups(endpoint, group):
    assert ratelimit.group_for(endpoint) == group


_WORKER = """
import os, sys, time
import django
django.setup()
from wechat_crm.wechat import ratelimit
from wechat_crm.wechat.errors import WeChatLocalRateLimited
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
granted = 0
for _ in range(40):
    try:
        ratelimit.reserve("template", max_wait=0)
        granted += 1
    except WeChatLocalRateLimited:
        pass
print(granted)
"""


def test_two_processes_share_one_budget(settings):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.test",
        "REDIS_URL": settings.REDIS_URL,
        # 30 requests of burst and practically no refill during the test.
        "WECHAT_RATE_LIMITS": "template=0.001:30",
    }
    start = str(time.time() + 2.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, start], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    granted = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # 80 attempts, one budget of 30: a per-process limiter would have granted 60.
    assert sum(granted) == 30
