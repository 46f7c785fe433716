"""A Celery worker killed with SIGKILL in the middle of a push: no recipient gets the message twice, none is lost.

A row whose message had started when the worker died is "unknown" (never resent blindly); every other recipient,
including the rest of the chunks the worker had claimed, gets exactly one message once the worker is back. The
fake WeChat server's records are the referee.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from content.services import pushes
from content.services.deliveries import StartMarks
from tests.helpers import wait_for

from .conftest import (
    TEMPLATE,
    exactly_once_report,
    make_audience,
    make_push,
    start,
    wait_dead_sessions_gone,
    wait_finished,
)

N = 2000


def test_sigkill_midway_loses_and_duplicates_nothing(celery_worker, fake_wechat, settings):
    make_audience(fake_wechat, N)
    push = make_push(settings)
    fake_wechat.configure(latency_ms=15)  # ~2 s of sending: enough to be killed midway
    start(push)

    wait_for(lambda: fake_wechat.count(TEMPLATE, errcode=0) >= N // 5, timeout=300, interval=0.05,
             message="the push did not start sending")  # fmt: skip
    celery_worker.kill()
    at_kill = fake_wechat.count(TEMPLATE, errcode=0)
    assert at_kill < N, "the push finished before the worker was killed: nothing was tested"

    wait_dead_sessions_gone()
    # What the beat's safety net does after its grace period: rows left "sending" by the dead worker become
    # unknown, the pages of queued rows are enqueued again.
    pushes.pushes_resume_stalled(now=timezone.now() + dt.timedelta(seconds=1), stalled_after=dt.timedelta(0))
    celery_worker.start()
    push = wait_finished(push, timeout=180)

    report = exactly_once_report(push, fake_wechat)
    print(f"\nkilled after {at_kill} sends; {report['unknown']} unknown ({report['unknown_accepted']} of them "
          f"reached WeChat); statuses {dict(report['statuses'])}")  # fmt: skip
    assert report["recipients"] == N
    assert report["duplicated"] == []
    assert report["lost"] == []
    assert report["not_final"] == []
    assert report["sent_without_record"] == []
    assert report["accepted_but_not_sent_or_unknown"] == []
    # Unknown are only messages marked started and not yet recorded as accepted when it died, per worker process:
    # the requests in flight plus the rest of their start-mark block (2 x PUSH_SEND_THREADS), and answers still in
    # the accepted-marks batch. The rest of each claimed chunk provably never left and was sent after the restart.
    in_flight = 2 * settings.PUSH_SEND_THREADS
    assert report["unknown"] - report["unknown_accepted"] <= 2 * in_flight
    assert report["unknown"] <= 2 * (in_flight + StartMarks.ACCEPTED_BATCH)
    assert fake_wechat.count(TEMPLATE, errcode=0) == N - (report["unknown"] - report["unknown_accepted"])
