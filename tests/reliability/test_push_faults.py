"""WeChat misbehaving during a push (10% 5xx, timeouts, 45009, 45011): every recipient ends final with a reason,
retries back off exponentially with jitter, and nobody gets the message twice."""

from __future__ import annotations

import statistics

from content.models import Delivery
from content.services.deliveries import retry_delay

from .conftest import TEMPLATE, exactly_once_report, make_audience, make_push, start, wait_finished

D = Delivery.Status
N = 400


def test_with_5xx_timeouts_and_quota_errors_every_recipient_ends_final_and_nobody_twice(
    celery_worker, fake_wechat, settings
):
    make_audience(fake_wechat, N, prefix="oFault")
    push = make_push(settings, max_attempts=6)
    fake_wechat.configure(
        error_5xx_rate=0.1, timeout_rate=0.02, timeout_seconds=3.0, errcode_rates={"45009": 0.03, "45011": 0.05}
    )
    start(push)
    push = wait_finished(push, timeout=600)

    report = exactly_once_report(push, fake_wechat)
    assert report["recipients"] == N
    assert report["duplicated"] == []
    assert report["lost"] == []
    assert report["not_final"] == []
    assert report["sent_without_record"] == []
    rows = Delivery.objects.filter(push=push)
    assert not rows.exclude(status__in=(D.SENT, D.DELIVERED)).filter(reason="").exists()  # every other has a reason
    calls = fake_wechat.calls(TEMPLATE)
    faults = {c["fault"] for c in calls if c["fault"]}
    assert any(f.startswith("http_5") for f in faults) and any(c["errcode"] in (45009, 45011) for c in calls)
    assert rows.filter(attempts__gt=1).exists()  # retried
    # A timeout after the request left: WeChat may have sent it, so it is unknown and never resent.
    unknown = set(rows.filter(status=D.UNKNOWN).values_list("subscriber__openid", flat=True))
    timed_out = {c["body"]["touser"] for c in calls if (c["fault"] or "").startswith("timeout")}
    assert timed_out and timed_out <= unknown
    assert report["accepted_but_not_sent_or_unknown"] == []


def test_retry_delays_grow_exponentially_with_jitter_and_respect_the_cap():
    samples = {attempt: [retry_delay(retry_after=None, attempt=attempt, cap=300) for _ in range(200)]
               for attempt in (1, 3, 5, 7)}  # fmt: skip
    means = [statistics.mean(samples[a]) for a in (1, 3, 5, 7)]
    assert means == sorted(means) and means[-1] > 8 * means[0]
    assert all(len({round(x, 6) for x in s}) > 150 for s in samples.values())  # jittered: no two alike
    assert all(x <= 300 for s in samples.values() for x in s)
    assert all(retry_delay(retry_after=None, attempt=30, cap=60) <= 60 for _ in range(50))
    assert min(retry_delay(retry_after=40, attempt=1, cap=300) for _ in range(50)) >= 20  # WeChat's hint respected
