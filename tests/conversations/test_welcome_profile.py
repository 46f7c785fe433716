"""A welcome that greets the person by name waits for WeChat's profile: people follow through our real callback, a
real Celery worker runs the follow-ups and the profile fetch against the fake WeChat server (which serves the
profile), and the fake's log of accepted customer-service messages is the referee."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.utils import translation

from conversations.models import JourneyStepRun
from tests.content.push_factories import policy
from tests.conversations.factories import JourneyFactory, JourneyStepFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import wait_for

CUSTOM = "/cgi-bin/message/custom/send"
BATCHGET = "/cgi-bin/user/info/batchget"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def welcome(celery_worker, fake_wechat, poster):
    policy()  # quiet hours off: tests run at any hour
    journey = JourneyFactory(name="Welcome", trigger="follow")
    JourneyStepFactory(journey=journey, position=0, action="message", text="欢迎 {nickname}!")
    return journey


def _welcomes(fake, worker) -> list[dict]:
    wait_for(lambda: fake.count(CUSTOM, errcode=0) >= 1, timeout=90,
             message=f"no welcome went out\n{worker.log()[-3000:]}")  # fmt: skip
    return [call["body"] for call in fake.calls(CUSTOM, errcode=0)]


def test_a_welcome_with_the_nickname_waits_for_the_profile_fetch(welcome, celery_worker, fake_wechat, poster):
    openid = "oWelcomeByName0000000000001"
    fake_wechat.add_users([{"openid": openid, "subscribe": 1, "nickname": "小李"}])

    poster.post(build_message("subscribe", openid=openid), "plain")

    welcomes = _welcomes(fake_wechat, celery_worker)
    assert welcomes == [{"touser": openid, "msgtype": "text", "text": {"content": "欢迎 小李!"}}]
    assert JourneyStepRun.objects.get().outcome == "done"
    assert fake_wechat.count(BATCHGET, errcode=0) == 1  # the profile was fetched once, before the welcome


def test_a_welcome_goes_with_a_neutral_word_when_the_profile_fetch_keeps_failing(
    welcome, celery_worker, fake_wechat, poster
):
    openid = "oWelcomeNoName0000000000001"
    fake_wechat.add_users([{"openid": openid, "subscribe": 1, "nickname": "小李"}])
    fake_wechat.configure(faults=[{"path": BATCHGET, "errcode": -1, "times": 1000}])  # WeChat busy all along
    started = time.monotonic()

    poster.post(build_message("subscribe", openid=openid), "plain")

    welcomes = _welcomes(fake_wechat, celery_worker)
    elapsed = time.monotonic() - started
    with translation.override(settings.LANGUAGE_CODE):  # the worker's language
        word = translation.pgettext("the name in a journey message when WeChat gave none", "friend")
    assert welcomes == [{"touser": openid, "msgtype": "text", "text": {"content": f"欢迎 {word}!"}}]
    assert fake_wechat.count(BATCHGET) >= 1 and fake_wechat.count(BATCHGET, errcode=0) == 0  # it was tried
    # It waited for the profile (JOURNEY_PROFILE_WAIT after the follow, which WeChat's CreateTime gives to the
    # second, so up to a second before the test's clock started), and went inside WeChat's minute: the fake accepted
    # it as a customer-service message after a follow.
    assert settings.JOURNEY_PROFILE_WAIT - 1 <= elapsed < 60
