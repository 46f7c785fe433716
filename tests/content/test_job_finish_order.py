"""WeChat's TEMPLATESENDJOBFINISH may reach our callback before the page that sent the message has written its msgid
(the real WeChat sometimes reports before it answers the send). The report must still mark its delivery, once,
whichever runs first: the page's write of the msgids or the report's follow-up.

The fake posts each report to our real callback (the live server) before it answers the send. The page runs in this
process and no worker consumes the follow-ups meanwhile, so when the page writes the msgids every report is stored
and none is processed yet: the state a report whose follow-up ran before the msgid was written leaves behind.
"""

from __future__ import annotations

from collections import Counter

import pytest

from accounts.follow_ups import interactions_process
from accounts.models import Interaction
from content.models import Delivery
from content.services.deliveries import tallies
from wechat_crm.wechat.dispatch import follow_ups_run

from .factories import SubscriberFactory
from .push_factories import PushFactory, policy, send_now

D = Delivery.Status
pytestmark = pytest.mark.django_db(transaction=True)


def _outcomes(push) -> Counter:
    return Counter(Delivery.objects.filter(push=push).values_list("status", "reason"))


def _reported() -> Counter:
    """What the stored reports say, as the deliveries' (status, reason)."""
    wanted = {"success": (D.DELIVERED, ""), "failed:user block": (D.FAILED, "user_block")}
    return Counter(wanted[s] for s in Interaction.objects.filter(kind="templatesendjobfinish").values_list(
        "status", flat=True))  # fmt: skip


def test_reports_posted_before_wechat_answers_the_send_mark_each_delivery_once(fake, live_server, settings):
    settings.WECHAT_HTTP_TIMEOUT = 5.0  # the fake answers after our callback did
    policy()
    subs = [SubscriberFactory(openid=f"oEarly{i:03d}") for i in range(60)]  # more than a chunk (PUSH_WRITE_EVERY)
    fake.add_users([{"openid": s.openid, "subscribe": 1} for s in subs])
    fake.configure(
        callback_url=live_server.url + "/wechat/callback/",
        job_finish_before_answer=True,
        template_failure_rates={"failed:user block": 0.3},
    )
    push = PushFactory()

    send_now(push)

    # Every report reached the callback before its send was answered, and none was processed when the page wrote
    # the msgids: the page applied them.
    assert fake.delivery_count("TEMPLATESENDJOBFINISH") == len(subs)
    assert Interaction.objects.filter(kind="templatesendjobfinish", processed_at__isnull=True).count() == len(subs)
    got = _outcomes(push)
    assert got == _reported()
    assert sum(got.values()) == len(subs) and got[(D.FAILED, "user_block")] > 0 and got[(D.DELIVERED, "")] > 0
    counters = +tallies.push_tallies(push_ids=[push.pk])[push.pk]
    assert counters[f"status:{D.DELIVERED}"] == got[(D.DELIVERED, "")]
    assert counters[f"status:{D.FAILED}"] == got[(D.FAILED, "user_block")]
    assert not counters[f"status:{D.SENT}"]

    # The follow-ups run afterwards (as the worker would): they change nothing, and count nothing twice.
    assert interactions_process(run=follow_ups_run, limit=1000).done == len(subs)
    assert _outcomes(push) == got
    assert +tallies.push_tallies(push_ids=[push.pk])[push.pk] == counters
    baseline = (tallies.BASELINE_FOLLOWERS, tallies.BASELINE_UNFOLLOWS)
    assert {k: n for k, n in counters.items() if k not in baseline} == tallies.recount(push_id=push.pk)
