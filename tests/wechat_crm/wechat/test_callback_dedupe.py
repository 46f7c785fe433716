"""Exactly once: retries and concurrent copies of a message store one interaction and get the same answer."""

import itertools
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from accounts.models import FollowEvent, Interaction, Subscriber
from tests.fixtures.wechat_payloads import MODES, CallbackPoster, build_message
from wechat_crm.wechat import dispatch
from wechat_crm.wechat import xml as wxml


@pytest.mark.django_db
@pytest.mark.parametrize("mode", MODES)
def test_retried_message_stores_one_interaction_and_answers_the_same(wechat_callback, mode):
    xml = build_message("text", Content="hello")

    first = wechat_callback.post(xml, mode=mode)
    retries = [wechat_callback.post(xml, mode=mode) for _ in range(2)]  # WeChat tries three times in all

    assert [r.status_code for r in (first, *retries)] == [200, 200, 200]
    assert {wechat_callback.reply_text(r) for r in (first, *retries)} == {"success"}
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_retried_subscribe_records_one_follow(wechat_callback):
    xml = build_message("subscribe", EventKey="qrscene_autumn")

    wechat_callback.post(xml)
    wechat_callback.post(xml)

    assert Interaction.objects.count() == 1
    assert FollowEvent.objects.count() == 1


@pytest.mark.django_db
def test_events_differing_only_in_event_key_are_both_stored(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("CLICK", EventKey="MENU_A", create_time=now))
    wechat_callback.post(build_message("CLICK", EventKey="MENU_B", create_time=now))

    assert sorted(Interaction.objects.values_list("event_key", flat=True)) == ["MENU_A", "MENU_B"]


@pytest.mark.django_db
def test_job_finish_reports_of_different_sends_in_the_same_second_are_both_stored(wechat_callback):
    now = int(time.time())
    wechat_callback.post(build_message("text", create_time=now - 60))  # the recipient we sent to
    wechat_callback.post(build_message("TEMPLATESENDJOBFINISH", MsgID="111", create_time=now))
    wechat_callback.post(build_message("TEMPLATESENDJOBFINISH", MsgID="222", create_time=now))
    wechat_callback.post(build_message("TEMPLATESENDJOBFINISH", MsgID="222", create_time=now))

    reports = Interaction.objects.filter(kind="templatesendjobfinish")
    assert sorted(reports.values_list("msg_id", flat=True)) == ["111", "222"]


@pytest.mark.django_db
def test_messages_without_msgid_are_deduplicated_by_sender_time_and_type(wechat_callback):
    xml = build_message("newfangled", MsgId=None, Payload="?")

    wechat_callback.post(xml)
    wechat_callback.post(xml)

    assert Interaction.objects.get().kind == "newfangled"


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["safe", "compat"])
def test_a_retry_gets_the_stored_reply_encrypted_in_safe_mode(wechat_callback, monkeypatch, mode):
    counter = itertools.count(1)

    def numbered_reply(message):
        return wxml.render(
            {
                "ToUserName": message.openid,
                "FromUserName": message.to_user,
                "CreateTime": 1,
                "MsgType": "text",
                "Content": f"reply #{next(counter)}",
            }
        )

    monkeypatch.setitem(dispatch.ROUTES, "text", dispatch.Route(replies=[numbered_reply]))
    xml = build_message("text")

    first = wechat_callback.post(xml, mode=mode)
    retry = wechat_callback.post(xml, mode=mode)

    assert b"<Encrypt>" in first.content and b"reply #" not in first.content
    assert wxml.parse(wechat_callback.reply_text(first))["Content"] == "reply #1"
    assert wxml.parse(wechat_callback.reply_text(retry))["Content"] == "reply #1"
    assert Interaction.objects.get().reply == wechat_callback.reply_text(first)


@pytest.mark.django_db
def test_an_xml_reply_is_plain_in_plain_mode(wechat_callback, monkeypatch):
    reply = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>"
    monkeypatch.setitem(dispatch.ROUTES, "text", dispatch.Route(replies=[lambda message: reply]))

    response = wechat_callback.post(build_message("text"), mode="plain")

    assert response.content.decode() == reply


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["text", "subscribe"])
def test_concurrent_copies_store_one_interaction(wechat_settings, kind):
    copies = 8
    base = int(time.time())
    for round_ in range(3):
        create_time = base - round_  # three different events; eight copies of each
        extra = {"EventKey": "qrscene_race"} if kind == "subscribe" else {}
        xml = build_message(kind, create_time=create_time, **extra)
        barrier = threading.Barrier(copies)
        results: list = []

        def deliver(xml=xml, barrier=barrier, results=results):
            try:
                poster = CallbackPoster(client=Client())
                barrier.wait()
                response = poster.post(xml, mode="safe")
                results.append((response.status_code, poster.reply_text(response)))
            finally:
                connection.close()

        threads = [threading.Thread(target=deliver) for _ in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert results == [(200, "success")] * copies
    assert Interaction.objects.count() == 3
    if kind == "subscribe":
        assert FollowEvent.objects.count() == 3


# --- The hot path's queries, pinned ---


@pytest.mark.django_db(transaction=True)
def test_a_text_message_costs_one_query(wechat_callback, django_assert_num_queries):
    wechat_callback.post(build_message("text"))  # the subscriber exists: the common case

    with django_assert_num_queries(1):  # one statement: upsert the subscriber, insert the interaction
        response = wechat_callback.post(build_message("text"))

    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_text_message_from_a_subscriber_we_hold_costs_one_query_that_leaves_their_row_alone(
    wechat_callback, django_assert_num_queries
):
    wechat_callback.post(build_message("text", openid="oWarm_up"))  # in-process caches of reply rules filled
    wechat_callback.post(build_message("subscribe", openid="oHeld_subscriber"))
    before = Subscriber.objects.filter(openid="oHeld_subscriber").values().get()

    with django_assert_num_queries(1):
        wechat_callback.post(build_message("text", openid="oHeld_subscriber"))

    # Its last_interaction_at moves in the follow-ups (accounts.events.touch), not in the request.
    assert Subscriber.objects.filter(openid="oHeld_subscriber").values().get() == before
    assert Interaction.objects.filter(subscriber__openid="oHeld_subscriber", kind="text").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_text_message_from_an_openid_we_do_not_hold_costs_two_queries(wechat_callback, django_assert_num_queries):
    wechat_callback.post(build_message("text", openid="oWarm_up"))  # in-process caches of reply rules filled

    with django_assert_num_queries(2):  # the lookup finds no one (nothing stored), then the subscriber is created
        wechat_callback.post(build_message("text", openid="oNew_subscriber"))

    assert Interaction.objects.get(subscriber__openid="oNew_subscriber").kind == "text"


@pytest.mark.django_db(transaction=True)
def test_a_subscribe_costs_one_query(wechat_callback, django_assert_num_queries):
    wechat_callback.post(build_message("subscribe", openid="oWarm_up"))  # in-process caches of reply rules filled

    with django_assert_num_queries(1):  # one statement: subscriber, interaction and follow event
        wechat_callback.post(build_message("subscribe"))


@pytest.mark.django_db(transaction=True)
def test_a_retry_costs_two_queries(wechat_callback, django_assert_num_queries):
    xml = build_message("text")
    wechat_callback.post(xml)

    with django_assert_num_queries(2):  # the statement that inserts nothing, then read the stored reply
        wechat_callback.post(xml)


@pytest.mark.django_db(transaction=True)
def test_the_record_statement_is_prepared_once_per_connection(wechat_callback):
    """Parsed and planned once, not on every callback (about a quarter of PostgreSQL's time per message)."""
    for _ in range(3):
        assert wechat_callback.post(build_message("text")).status_code == 200

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(generic_plans + custom_plans) FROM pg_prepared_statements WHERE statement LIKE %s",
            ['WITH e AS (SELECT id FROM "accounts_subscriber"%'],
        )
        statements, executions = cursor.fetchone()
    assert statements == 1
    assert executions == 3


@pytest.mark.django_db
def test_publish_reports_of_different_publications_in_the_same_second_are_both_stored(wechat_callback):
    """PUBLISHJOBFINISH carries no MsgID: what it reports is nested in PublishEventInfo, which tells them apart."""
    now = int(time.time())

    def report(publish_id: str) -> str:
        info = {"publish_id": publish_id, "publish_status": "0", "article_id": f"A{publish_id}"}
        return build_message("PUBLISHJOBFINISH", event=True, create_time=now, PublishEventInfo=info)

    wechat_callback.post(report("2247483001"))
    wechat_callback.post(report("2247483002"))
    wechat_callback.post(report("2247483002"))  # WeChat's retry of the second

    assert Interaction.objects.filter(kind="publishjobfinish").count() == 2
