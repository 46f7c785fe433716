"""The segment rules compiler: each rule type, AND/OR groups, one query, invalid rules refused."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Interaction, Subscriber, Tag
from content.errors import SegmentInvalid
from content.services.segments import rules_validate, segment_create, segment_subscribers
from tests.campaigns.factories import ChannelFactory

from .factories import SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def members(rules) -> set[str]:
    return set(segment_subscribers(rules=rules, now=NOW).values_list("nickname", flat=True))


@pytest.fixture
def audience():
    """a: tags vip+news, engaged, followed 3 days ago, active today, city Beijing, age 30, prefers topic t1
    b: tag news, followed 40 days ago, active 60 days ago, city Shanghai, age 20
    c: no tags, converted, never active, no attributes, channel poster
    gone: tag vip, not following"""
    vip, news = Tag.objects.create(name="vip"), Tag.objects.create(name="news")
    t1, t2 = TopicFactory(), TopicFactory()
    poster = ChannelFactory(name="poster", scene_str="poster-1")
    a = SubscriberFactory(
        nickname="a",
        stage="engaged",
        subscribed_at=NOW - dt.timedelta(days=3),
        last_interaction_at=NOW - dt.timedelta(hours=1),
        attributes={"city": "Beijing", "age": 30},
    )
    b = SubscriberFactory(
        nickname="b",
        subscribed_at=NOW - dt.timedelta(days=40),
        last_interaction_at=NOW - dt.timedelta(days=60),
        attributes={"city": "Shanghai", "age": 20},
    )
    SubscriberFactory(
        nickname="c", stage="converted", subscribed_at=NOW - dt.timedelta(days=400), source_channel=poster
    )
    gone = SubscriberFactory(nickname="gone", is_following=False)
    a.tags.set([vip, news])
    b.tags.set([news])
    gone.tags.set([vip])
    a.topics_preferred.set([t1])
    b.topics_preferred.set([t2])
    return {"vip": vip.pk, "news": news.pk, "t1": t1.pk, "t2": t2.pk, "poster": poster.pk}  # fmt: skip


def test_empty_rules_select_every_follower_and_never_the_unfollowed(audience):
    assert members({}) == {"a", "b", "c"}


def test_tags_any_all_none(audience):
    assert members([{"type": "tags", "match": "any", "tags": [audience["vip"], audience["news"]]}]) == {"a", "b"}
    assert members([{"type": "tags", "match": "all", "tags": [audience["vip"], audience["news"]]}]) == {"a"}
    assert members([{"type": "tags", "match": "none", "tags": [audience["vip"]]}]) == {"b", "c"}


def test_stage_and_source_channel(audience):
    assert members([{"type": "stage", "in": ["engaged", "converted"]}]) == {"a", "c"}
    assert members([{"type": "source_channel", "in": [audience["poster"]]}]) == {"c"}


def test_follow_date_and_last_interaction(audience):
    assert members([{"type": "followed", "within_days": 7}]) == {"a"}
    assert members([{"type": "followed", "older_than_days": 30}]) == {"b", "c"}
    day = (NOW - dt.timedelta(days=100)).date().isoformat()
    assert members([{"type": "followed", "after": day}]) == {"a", "b"}
    assert members([{"type": "followed", "before": day}]) == {"c"}
    assert members([{"type": "last_interaction", "within_days": 1}]) == {"a"}
    # "older than 30 days" includes those who never interacted
    assert members([{"type": "last_interaction", "older_than_days": 30}]) == {"b", "c"}


def test_a_message_whose_follow_ups_have_not_run_yet_is_already_the_last_interaction(audience):
    """The callback stores a message at once; the subscriber's last_interaction_at moves in its follow-ups a moment
    later. A segment built in between sees the message: b, silent for 60 days, has just written."""
    b, c = Subscriber.objects.get(nickname="b"), Subscriber.objects.get(nickname="c")
    at = NOW - dt.timedelta(minutes=1)
    Interaction.objects.create(subscriber=b, kind="text", dedupe_key="msg:seg-1", raw_xml="", created_at=at,
                               received_at=at, processed_at=None)  # fmt: skip
    # A report about our own send to c, waiting for its follow-ups too, is nothing c did.
    Interaction.objects.create(subscriber=c, kind="templatesendjobfinish", dedupe_key="msg:seg-2", raw_xml="",
                               created_at=at, received_at=at, processed_at=None)  # fmt: skip
    assert Subscriber.objects.get(pk=b.pk).last_interaction_at < NOW - dt.timedelta(days=59)

    assert members([{"type": "last_interaction", "within_days": 1}]) == {"a", "b"}
    assert members([{"type": "last_interaction", "older_than_days": 30}]) == {"c"}


def test_topic_preferences(audience):
    assert members([{"type": "topics_preferred", "match": "any", "topics": [audience["t1"]]}]) == {"a"}
    assert members([{"type": "topics_preferred", "match": "none", "topics": [audience["t1"]]}]) == {"b", "c"}


def test_custom_attributes(audience):
    assert members([{"type": "attribute", "key": "city", "op": "eq", "value": "Beijing"}]) == {"a"}
    assert members([{"type": "attribute", "key": "city", "op": "ne", "value": "Beijing"}]) == {"b", "c"}
    assert members([{"type": "attribute", "key": "city", "op": "in", "value": ["Beijing", "Shanghai"]}]) == {"a", "b"}
    assert members([{"type": "attribute", "key": "age", "op": "gte", "value": 25}]) == {"a"}
    assert members([{"type": "attribute", "key": "age", "op": "lt", "value": 25}]) == {"b"}
    assert members([{"type": "attribute", "key": "city", "op": "contains", "value": "shang"}]) == {"b"}
    assert members([{"type": "attribute", "key": "age", "op": "exists"}]) == {"a", "b"}
    assert members([{"type": "attribute", "key": "age", "op": "missing"}]) == {"c"}


def test_and_or_nested_groups(audience):
    rules = {
        "op": "or",
        "rules": [
            {"type": "stage", "in": ["converted"]},
            {"op": "and", "rules": [
                {"type": "tags", "match": "any", "tags": [audience["news"]]},
                {"type": "last_interaction", "older_than_days": 30},
            ]},
        ],
    }  # fmt: skip
    assert members(rules) == {"b", "c"}
    assert members({"op": "and", "rules": rules["rules"]}) == set()


def test_segment_compiles_to_one_query(audience):
    rules = {"op": "or", "rules": [
        {"type": "tags", "match": "all", "tags": [audience["vip"], audience["news"]]},
        {"type": "topics_preferred", "match": "any", "topics": [audience["t2"]]},
        {"type": "attribute", "key": "city", "op": "eq", "value": "Shanghai"},
    ]}  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        assert members(rules) == {"a", "b"}
    assert len(ctx.captured_queries) == 1


@pytest.mark.parametrize(
    ("rules", "where"),
    [
        ([{"type": "nope"}], "rules.rules[0].type"),
        ([{"type": "tags", "match": "some", "tags": [1]}], "rules.rules[0].match"),
        ([{"type": "tags", "tags": []}], "rules.rules[0].tags"),
        ([{"type": "tags", "tags": ["vip"]}], "rules.rules[0].tags"),
        ([{"type": "tags", "tags": [999999]}], "rules.rules[0].tags"),
        ([{"type": "stage", "in": ["vip"]}], "rules.rules[0].in"),
        ([{"type": "last_interaction"}], "rules.rules[0]"),
        ([{"type": "last_interaction", "within_days": -1}], "rules.rules[0].within_days"),
        ([{"type": "followed", "after": "yesterday"}], "rules.rules[0].after"),
        ([{"type": "attribute", "key": "a b", "value": 1}], "rules.rules[0].key"),
        ([{"type": "attribute", "key": "age", "op": "gt", "value": "x"}], "rules.rules[0].value"),
        ({"op": "xor", "rules": []}, "rules.op"),
        ([{"op": "or", "rules": "x"}], "rules.rules[0].rules"),
        ("not json rules", "rules"),
    ],
)
def test_invalid_rules_are_refused_with_where(rules, where):
    with pytest.raises(SegmentInvalid) as exc:
        rules_validate(rules)
    assert exc.value.extra["path"] == where
    assert where in exc.value.message


def test_segment_save_refuses_invalid_rules_and_stores_the_normal_form(audience):
    with pytest.raises(SegmentInvalid):
        segment_create(name="bad", rules=[{"type": "stage", "in": []}])
    segment = segment_create(name="vips", rules=[{"type": "tags", "tags": [audience["vip"]]}])
    assert segment.rules == {"op": "and", "rules": [{"type": "tags", "match": "any", "tags": [audience["vip"]]}]}
    assert Subscriber.objects.count() == 4
