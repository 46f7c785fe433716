"""The send policy (conversations.policy), table-driven: each situation of a person, through each path that sends
(a push by template and by customer-service message, a journey's message step, an auto-reply's template, an
operator's reply and template), with what the path recorded and what the fake WeChat server received.

Every case runs the path's own entry point against the fake over HTTP; the fake enforces WeChat's customer-service
window itself (it learns what each person did from `person_did(..., fake=...)`), and its call log must show no
message to anyone the policy keeps back."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Subscriber
from content.errors import PushInvalid
from content.models import Delivery, MessageTemplate, Push, SendPolicy
from content.services import pushes
from content.services.deliveries import deliveries_send_page
from conversations import policy, services
from conversations.errors import OutsideWindow, SendRefused
from conversations.journeys import entry, steps
from conversations.models import JourneyEnrollment, JourneyStepRun, OutboundMessage
from tests.content.factories import ArticleFactory, MessageTemplateFactory, SubscriberFactory, TopicFactory
from tests.content.push_factories import PushFactory, SegmentFactory
from tests.content.push_factories import policy as send_policy
from tests.conversations.factories import JourneyFactory, JourneyStepFactory
from tests.helpers import person_did

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
NOW_, LATER, NEVER = "now", "later", "never"


# --- situations: what is true of the person (and the account) -------------------------------------------------------


def _quiet_now() -> None:
    local = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8)))
    send_policy(quiet_hours_enabled=True,
                quiet_start=(local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0),
                quiet_end=(local + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0))  # fmt: skip


def situation(name: str, sub: Subscriber, fake, ctx: dict) -> None:
    now = timezone.now()
    wrote = now - dt.timedelta(hours=1)
    if name == "open":  # wrote an hour ago
        person_did(sub, "text", wrote, fake=fake)
    elif name == "unfollowed":
        person_did(sub, "text", wrote, fake=fake)
        ctx["unfollow"] = True
    elif name == "td":  # replied TD: pushes paused
        person_did(sub, "text", wrote, fake=fake)
        Subscriber.objects.filter(pk=sub.pk).update(pushes_paused=True)
    elif name == "topic_opt_out":
        person_did(sub, "text", wrote, fake=fake)
        sub.topics_opted_out.set([ctx["topic"]])
    elif name == "capped":  # 4 pushes this week (the default cap)
        person_did(sub, "text", wrote, fake=fake)
        for _ in range(4):
            other = PushFactory(status=Push.Status.SENT)
            Delivery.objects.create(push=other, subscriber=sub, channel="template", status="delivered",
                                    claimed_at=now - dt.timedelta(days=1), created_at=now)  # fmt: skip
    elif name == "quiet":
        person_did(sub, "text", wrote, fake=fake)
        _quiet_now()
    elif name == "silent":  # last wrote three days ago
        person_did(sub, "text", now - dt.timedelta(days=3), fake=fake)
    elif name == "located":  # wrote three days ago; since: an automatic location report, a VIEW, a tracked link
        person_did(sub, "text", now - dt.timedelta(days=3), fake=fake)
        person_did(sub, "location_event", wrote, fake=fake, latitude=31.2, longitude=121.4)
        person_did(sub, "view", wrote, fake=fake)
        person_did(sub, "link_click", wrote, fake=fake)
        Subscriber.objects.filter(pk=sub.pk).update(last_interaction_at=wrote)
    elif name == "five_sent":  # wrote an hour ago, and got WeChat's 5 customer-service messages since
        person_did(sub, "text", wrote, fake=fake)
        for i in range(5):
            fake.api(CUSTOM, {"touser": sub.openid, "msgtype": "text", "text": {"content": f"m{i}"}},
                     access_token=fake.fetch_token())  # fmt: skip
            OutboundMessage.objects.create(subscriber=sub, kind="custom", source="operator", status="sent",
                                           created_at=now - dt.timedelta(minutes=30), sent_at=now)  # fmt: skip
        ctx["calls_before"] = 5
    elif name == "marketing":  # the template is marketing (window open)
        person_did(sub, "text", wrote, fake=fake)
        MessageTemplate.objects.filter(pk=ctx["template"].pk).update(purpose=MessageTemplate.Purpose.MARKETING)
        ctx["template"].refresh_from_db()
    else:
        raise AssertionError(name)


# --- paths: each one's own entry point, and what it recorded ---------------------------------------------------------


def _push(channel: str, sub: Subscriber, ctx: dict) -> tuple[str, str]:
    push = PushFactory(channel=channel, template=ctx["template"] if channel == "template" else None,
                       text="hello https://example.com/", segment=SegmentFactory(), article=ctx["article"],
                       allow_marketing_template=ctx.get("allow_marketing", False))  # fmt: skip
    pushes.push_schedule(push=push, send_at=timezone.now())
    pushes.pushes_claim_due(push_id=push.pk)
    push.refresh_from_db()
    pushes.push_resolve(push=push)
    if ctx.get("unfollow"):  # they left after the recipients were written (we heard of it)
        Subscriber.objects.filter(pk=sub.pk).update(is_following=False)
    for lo, hi in pushes.push_pages(push_id=push.pk, size=500):
        deliveries_send_page(push_id=push.pk, lo=lo, hi=hi, threads=1)
    d = Delivery.objects.get(push=push, subscriber=sub)
    if d.status == "queued" and d.not_before is not None:
        return LATER, d.reason or policy.Reason.QUIET_HOURS
    if d.status == "skipped":
        return NEVER, d.reason
    assert d.status in ("sent", "delivered"), (d.status, d.reason)
    return NOW_, ""


def push_template(sub, ctx):
    return _push("template", sub, ctx)


def push_custom(sub, ctx):
    return _push("custom", sub, ctx)


def journey(sub, ctx):
    j = JourneyFactory(trigger="stage", stage="followed")
    step = JourneyStepFactory(journey=j, action="message", text="hello", content="article", article=ctx["article"],
                              template=ctx.get("journey_template", ctx["template"]))  # fmt: skip
    if ctx.get("unfollow"):
        Subscriber.objects.filter(pk=sub.pk).update(is_following=False)
    now = timezone.now()
    enrollment = entry.journey_enter(journey=j, subscriber_id=sub.pk, now=now)
    steps.journeys_advance(now=now)
    _send_outbound()
    run = JourneyStepRun.objects.filter(step=step).first()
    if run is None:
        enrollment.refresh_from_db()
        assert enrollment.due_at > now and enrollment.status == JourneyEnrollment.Status.ACTIVE
        return LATER, policy.Reason.QUIET_HOURS
    if run.outcome == "skipped":
        return NEVER, run.detail.partition(":")[0]
    assert OutboundMessage.objects.get(source="journey").status == "sent"
    return NOW_, run.detail  # the channel taken


def auto_reply(sub, ctx):
    if ctx.get("unfollow"):
        Subscriber.objects.filter(pk=sub.pk).update(is_following=False)
    sub.refresh_from_db()
    send = services.TemplateSend(subscriber=sub, template=ctx["template"], dedupe_key="auto:1", at=timezone.now())
    services.templates_send(sends=[send], source=OutboundMessage.Source.AUTO_REPLY)
    _send_outbound()
    message = OutboundMessage.objects.get(dedupe_key="auto:1")
    if message.status == "skipped":
        return NEVER, message.skip_reason
    assert message.status == "sent", (message.status, message.reason)
    return NOW_, ""


def operator_reply(sub, ctx):
    if ctx.get("unfollow"):
        Subscriber.objects.filter(pk=sub.pk).update(is_following=False)
    sub.refresh_from_db()
    try:
        services.operator_reply(subscriber=sub, text="您好")
    except OutsideWindow as exc:
        return NEVER, exc.extra["reason"]
    _send_outbound()
    assert OutboundMessage.objects.get(source="operator", text="您好").status == "sent"
    return NOW_, ""


def operator_template(sub, ctx):
    if ctx.get("unfollow"):
        Subscriber.objects.filter(pk=sub.pk).update(is_following=False)
    sub.refresh_from_db()
    try:
        services.template_send(subscriber=sub, template=ctx["template"])
    except SendRefused as exc:
        return NEVER, exc.extra["reason"]
    _send_outbound()
    return NOW_, ""


def _send_outbound() -> None:
    for pk in OutboundMessage.objects.filter(status="queued").values_list("pk", flat=True):
        services.outbound_send(message_id=pk)


PATHS = {f.__name__: f for f in (push_template, push_custom, journey, auto_reply, operator_reply, operator_template)}

# situation -> {path: (verdict, reason)}; a journey's NOW names the channel it took.
N = NEVER
TABLE: dict[str, dict[str, tuple[str, str]]] = {
    "open": {"push_template": (NOW_, ""), "push_custom": (NOW_, ""), "journey": (NOW_, "custom"),
             "auto_reply": (NOW_, ""), "operator_reply": (NOW_, ""), "operator_template": (NOW_, "")},
    "unfollowed": dict.fromkeys(PATHS, (N, "not_following")),
    "td": {"push_template": (N, "paused"), "push_custom": (N, "paused"), "journey": (N, "paused"),
           "auto_reply": (N, "paused"), "operator_reply": (NOW_, ""), "operator_template": (NOW_, "")},
    "topic_opt_out": {"push_template": (N, "topic_opt_out"), "push_custom": (N, "topic_opt_out"),
                      "journey": (N, "topic_opt_out"), "auto_reply": (NOW_, ""), "operator_reply": (NOW_, "")},
    "capped": {"push_template": (N, "frequency_cap"), "push_custom": (N, "frequency_cap"),
               "journey": (N, "frequency_cap"), "auto_reply": (NOW_, ""), "operator_reply": (NOW_, "")},
    "quiet": {"push_template": (LATER, "quiet_hours"), "push_custom": (LATER, "quiet_hours"),
              "journey": (LATER, "quiet_hours"), "auto_reply": (NOW_, ""), "operator_reply": (NOW_, "")},
    "silent": {"push_template": (NOW_, ""), "push_custom": (N, "outside_window"), "journey": (NOW_, "template"),
               "auto_reply": (NOW_, ""), "operator_reply": (N, "outside_window")},
    "located": {"push_custom": (N, "outside_window"), "journey": (NOW_, "template"),
                "operator_reply": (N, "outside_window")},
    "five_sent": {"push_custom": (N, "window_limit"), "operator_reply": (N, "window_limit"),
                  "journey": (NOW_, "template")},
    "marketing": {"push_template": (N, "template_marketing"), "auto_reply": (N, "template_marketing"),
                  "operator_template": (N, "template_marketing"), "journey": (NOW_, "custom")},
}  # fmt: skip
CASES = [(s, p, expected) for s, row in TABLE.items() for p, expected in row.items()]


@pytest.fixture
def world(fake, settings, db):
    settings.WECHAT_HTTP_TIMEOUT = 1.0
    send_policy()  # quiet hours off unless the situation says otherwise
    topic = TopicFactory()
    article = ArticleFactory(status="published", published_at=timezone.now())
    article.topics.set([topic])
    template = MessageTemplateFactory(wechat_template_id="TPL_SERVICE")
    return {"topic": topic, "article": article, "template": template}


@pytest.mark.parametrize(("name", "path", "expected"), CASES, ids=[f"{s}-{p}" for s, p, _e in CASES])
def test_the_send_policy_decides_each_path(name, path, expected, world, fake):
    sub = SubscriberFactory(openid=f"oPolicy_{name}_{path}"[:60])
    fake.add_users([{"openid": sub.openid, "subscribe": 1}])
    ctx = dict(world)
    situation(name, sub, fake, ctx)
    if name == "marketing" and path == "push_template":  # a push cannot even be scheduled without the override
        with pytest.raises(PushInvalid) as refused:
            push_template(sub, ctx)
        assert refused.value.extra["fields"].keys() == {"allow_marketing_template"}
        verdict = (N, "template_marketing")
    else:
        verdict = PATHS[path](sub, ctx)
    assert verdict == expected

    # The fake's call log: nothing reached anyone the policy kept back (beyond the situation's own set-up).
    to_them = [c for c in fake.calls() if isinstance(c["body"], dict) and c["body"].get("touser") == sub.openid
               and c["path"] in (CUSTOM, TEMPLATE)]  # fmt: skip
    accepted = [c for c in to_them if c["errcode"] == 0][ctx.get("calls_before", 0) :]
    assert len(accepted) == (1 if expected[0] == NOW_ else 0), [c["body"] for c in to_them]
    # WeChat never had to refuse one (40001 is a stale token the client refreshes, not a refusal of the message).
    assert not [c for c in to_them if c["errcode"] not in (0, None, 40001)]


def test_the_policy_decides_many_subscribers_in_a_few_queries(world, fake, django_assert_max_num_queries):
    subs = [SubscriberFactory() for _ in range(60)]
    now = timezone.now()
    for sub in subs[::2]:
        person_did(sub, "text", now - dt.timedelta(hours=2))
    send = policy.Send(channel=policy.Channel.CUSTOM, source=policy.Source.JOURNEY, topic_ids=(world["topic"].pk,))
    send_policy()
    with django_assert_max_num_queries(5):
        decisions = policy.decide_many(send=send, subscriber_ids=[s.pk for s in subs], now=now)
    assert [decisions[s.pk].verdict for s in subs] == [NOW_, NEVER] * 30
    assert {decisions[s.pk].reason for s in subs[1::2]} == {"outside_window"}


def test_the_inbox_pushes_and_journeys_read_the_same_window(world, fake):
    sub = SubscriberFactory()
    person_did(sub, "click", timezone.now() - dt.timedelta(seconds=20))  # a menu click: 3 messages in a minute
    window = services.cs_window(sub)
    assert (window.allowed, window.remaining) == (True, 3)
    assert policy.windows(subscriber_ids=[sub.pk])[sub.pk] == window
    journey_send = policy.Send(channel=policy.Channel.CUSTOM, source=policy.Source.JOURNEY)
    assert policy.decide(send=journey_send, subscriber=sub).allowed


def test_a_journey_step_deferred_by_quiet_hours_is_sent_when_they_end(world, fake):
    sub = SubscriberFactory(last_interaction_at=timezone.now() - dt.timedelta(hours=3))  # asleep since
    fake.add_users([{"openid": sub.openid, "subscribe": 1}])
    _quiet_now()
    quiet_end = policy.quiet_hours_end(SendPolicy.current(), timezone.now())
    j = JourneyFactory(trigger="stage", stage="followed")
    JourneyStepFactory(journey=j, action="message", text="早上好", template=world["template"])
    now = timezone.now()
    enrollment = entry.journey_enter(journey=j, subscriber_id=sub.pk, now=now)

    steps.journeys_advance(now=now)
    enrollment.refresh_from_db()
    assert enrollment.due_at == quiet_end and not JourneyStepRun.objects.exists()
    assert fake.count(TEMPLATE) == 0

    steps.journeys_advance(now=quiet_end + dt.timedelta(minutes=1))
    send_policy()  # the worker sends it in the morning (the real clock is still in this test's quiet hours)
    _send_outbound()
    (run,) = JourneyStepRun.objects.all()
    assert (run.outcome, run.detail) == ("done", "template")
    assert [c["body"]["touser"] for c in fake.calls(TEMPLATE, errcode=0)] == [sub.openid]


def test_a_welcome_at_night_goes_at_once_to_the_person_who_just_followed(world, fake):
    """Quiet hours keep the account from waking people: someone who followed a minute ago is awake, so the welcome
    journey's first step goes now, through the fake, at any hour; the same step to someone whose last interaction
    was an hour ago waits for the morning, and so does a push to the one who just followed."""
    now = timezone.now()
    new, old = SubscriberFactory(), SubscriberFactory()
    fake.add_users([{"openid": s.openid, "subscribe": 1} for s in (new, old)])
    person_did(new, "subscribe", now - dt.timedelta(seconds=20), fake=fake)  # WeChat's minute after a follow
    person_did(old, "text", now - dt.timedelta(hours=1), fake=fake)
    Subscriber.objects.filter(pk=new.pk).update(last_interaction_at=now - dt.timedelta(seconds=20))
    Subscriber.objects.filter(pk=old.pk).update(last_interaction_at=now - dt.timedelta(hours=1))
    _quiet_now()
    quiet_end = policy.quiet_hours_end(SendPolicy.current(), now)
    welcome = JourneyFactory(trigger="follow")
    JourneyStepFactory(journey=welcome, action="message", text="欢迎关注")
    for sub in (new, old):
        entry.journey_enter(journey=welcome, subscriber_id=sub.pk, now=now)

    steps.journeys_advance(now=now)
    _send_outbound()
    assert [c["body"]["touser"] for c in fake.calls(CUSTOM, errcode=0)] == [new.openid]
    assert JourneyEnrollment.objects.get(subscriber=old).due_at == quiet_end
    push_send = policy.Send(channel=policy.Channel.CUSTOM, source=policy.Source.PUSH)
    assert policy.decide(send=push_send, subscriber=new).verdict == LATER


def test_a_message_whose_follow_ups_have_not_run_yet_wakes_the_person_for_a_journey_step(world, fake):
    """The callback stores a message at once; last_interaction_at moves in its follow-ups a moment later. A journey
    step decided in between, at night, goes now to the person who has just written (not at the end of the night);
    a report about our own send to them, waiting for its follow-ups too, wakes no one."""
    from accounts.models import Interaction

    now = timezone.now()
    wrote, reported = SubscriberFactory(), SubscriberFactory()
    for sub in (wrote, reported):
        person_did(sub, "text", now - dt.timedelta(hours=3))
    Subscriber.objects.filter(pk__in=[wrote.pk, reported.pk]).update(last_interaction_at=now - dt.timedelta(hours=3))
    for sub, kind in ((wrote, "text"), (reported, "templatesendjobfinish")):
        Interaction.objects.create(subscriber=sub, kind=kind, dedupe_key=f"msg:awake-{sub.pk}", raw_xml="",
                                   created_at=now - dt.timedelta(seconds=20),
                                   received_at=now - dt.timedelta(seconds=20), processed_at=None)  # fmt: skip
    _quiet_now()
    journey_send = policy.Send(channel=policy.Channel.CUSTOM, source=policy.Source.JOURNEY)

    decisions = policy.decide_many(send=journey_send, subscriber_ids=[wrote.pk, reported.pk])
    assert decisions[wrote.pk].verdict == NOW_ and decisions[reported.pk].verdict == LATER


def test_a_message_queued_before_quiet_hours_waits_for_their_end(world, fake):
    """The worker asks the policy again just before sending: a journey message created before quiet hours began is
    deferred (not_before), not sent into the night, and not dropped."""
    sub = SubscriberFactory()
    fake.add_users([{"openid": sub.openid, "subscribe": 1}])
    message = services.template_send(subscriber=sub, template=world["template"], source="journey")
    _quiet_now()
    result = services.outbound_send(message_id=message.pk)
    message.refresh_from_db()
    assert (message.status, message.skip_reason) == ("queued", "quiet_hours")
    assert result.defer_until == message.not_before and message.not_before > timezone.now()
    assert services.outbound_send(message_id=message.pk).status == ""  # not due yet: nobody claims it
    assert fake.count(TEMPLATE) == 0
