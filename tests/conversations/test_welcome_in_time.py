"""A burst of follows: each follow's welcome must reach WeChat inside the minute after the follow. The follow-ups'
own process sends the messages a batch queued right after the batch commits, instead of queueing a page task behind
the follow-up tasks already waiting (in a burst, a whole backlog of them). People follow through our real callback;
the follow-ups run here, with no Celery worker consuming; the fake WeChat server's log is the referee."""

from __future__ import annotations

import pytest

from accounts import tasks
from accounts.models import Interaction
from conversations.models import OutboundMessage
from tests.content.push_factories import policy
from tests.conversations.factories import JourneyFactory, JourneyStepFactory
from tests.fixtures.wechat_payloads import build_message

CUSTOM = "/cgi-bin/message/custom/send"

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_follow_batch_sends_its_welcomes_when_it_commits_not_behind_queued_tasks(fake_with_token, poster):
    policy()  # quiet hours off: tests run at any hour
    journey = JourneyFactory(name="Welcome", trigger="follow")
    JourneyStepFactory(journey=journey, position=0, action="message", text="欢迎关注！")
    openids = [f"oWelcomeInTime{n:013d}" for n in range(3)]
    fake_with_token.add_users([{"openid": openid, "subscribe": 1} for openid in openids])
    for openid in openids:
        poster.post(build_message("subscribe", openid=openid), "plain")
    follows = list(Interaction.objects.filter(kind="subscribe").values_list("pk", flat=True))

    # The task the callback's relay queued, run here: no worker takes the tasks it queues in turn.
    assert tasks.interactions_process(follows) == 3

    welcomes = {call["body"]["touser"]: call["body"] for call in fake_with_token.calls(CUSTOM, errcode=0)}
    assert welcomes == {o: {"touser": o, "msgtype": "text", "text": {"content": "欢迎关注！"}} for o in openids}
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert tasks.interactions_process(follows) == 0  # a second delivery of the task sends nothing again
    assert fake_with_token.count(CUSTOM) == 3
