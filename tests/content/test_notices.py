"""Subscription notices (订阅通知) without a worker: the account's templates from the fake WeChat's library, WeChat's
value rules refused when a push is saved (API 400 and admin form, naming the field), consents recorded from the
popup and change events posted to the callback, the roles, and who a notice push skips for consent and when."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Subscriber
from content.models import Delivery, NoticeConsent, NoticeConsentChange, NoticeTemplate, Push
from content.selectors import push_report
from content.services import notices, pushes
from content.services.deliveries import deliveries_send_page, tallies
from conversations import policy
from tests.fixtures.wechat_payloads import build_message
from wechat_crm.wechat import notice_rules
from wechat_crm.wechat.inbound import notice_items

from .factories import ArticleFactory, MarketerFactory, SubscriberFactory, TopicFactory
from .push_factories import PushFactory, SegmentFactory, reasons

pytestmark = pytest.mark.django_db
OPENID = "oTest_subscriber_000000000001"


@pytest.fixture
def template(fake):
    return notices.notice_template_add(tid="1001", kid_list=[1, 3, 4], scene_desc="发货提醒")


# --- the library and the account's templates ------------------------------------------------------------------------


def test_a_library_title_is_added_with_its_keywords_and_rules(template, fake):
    assert template.title == "订单发货通知" and template.library_tid == "1001"
    assert template.keywords == [
        {"key": "thing1", "name": "商品名称", "rule": "thing"},
        {"key": "time3", "name": "发货时间", "rule": "time"},
        {"key": "amount4", "name": "订单金额", "rule": "amount"},
    ]
    add = fake.calls("/wxaapi/newtmpl/addtemplate")[-1]
    assert add["body"] == {"tid": "1001", "kidList": [1, 3, 4], "sceneDesc": "发货提醒"}


def test_sync_creates_updates_and_marks_what_wechat_no_longer_has(template, fake):
    token = fake.fetch_token()
    other = fake.api("/wxaapi/newtmpl/addtemplate", {"tid": "1003", "kidList": [1, 2], "sceneDesc": ""},
                     access_token=token)["priTmplId"]  # fmt: skip
    fake.api("/wxaapi/newtmpl/deltemplate", {"priTmplId": template.template_id}, access_token=token)

    assert notices.notice_templates_sync() == {"created": 1, "updated": 0, "gone": 1}
    synced = NoticeTemplate.objects.get(template_id=other)
    assert synced.kind == NoticeTemplate.Kind.LONG_TERM and synced.keys == ["thing1", "time2"]
    assert not NoticeTemplate.objects.get(pk=template.pk).on_wechat


def test_the_api_lists_the_library_adds_and_syncs(staff_api, fake):
    library = staff_api.get("/api/notice-templates/library/")
    assert library.status_code == 200
    assert {t["tid"] for t in library.json()["titles"]} == {"1001", "1002", "1003"}
    keywords = staff_api.get("/api/notice-templates/library/1002/").json()
    assert [k["rule"] for k in keywords][:2] == ["thing", "time"]

    added = staff_api.post("/api/notice-templates/library-add/", {"tid": "1002", "kid_list": [1, 2, 4],
                                                                  "scene_desc": "活动"}, format="json")  # fmt: skip
    assert added.status_code == 201, added.json()
    assert added.json()["keywords"][2] == {"key": "phrase4", "name": "状态", "rule": "phrase"}
    assert staff_api.post("/api/notice-templates/sync/").json() == {"created": 0, "updated": 1, "gone": 0}
    assert len(staff_api.get("/api/notice-templates/").json()["results"]) == 1


def test_a_library_add_with_one_keyword_is_refused_naming_the_field(staff_api, fake):
    resp = staff_api.post("/api/notice-templates/library-add/", {"tid": "1002", "kid_list": [1]}, format="json")
    assert resp.status_code == 400
    assert "kid_list" in resp.json()["extra"]["fields"]
    assert fake.count("/wxaapi/newtmpl/addtemplate") == 0


def test_marketers_read_notice_templates_but_do_not_sync_or_add(fake):
    api = APIClient()
    api.force_authenticate(MarketerFactory())
    assert api.get("/api/notice-templates/").status_code == 200
    assert api.get("/api/notice-consents/").status_code == 200
    assert api.post("/api/notice-templates/sync/").status_code == 403
    assert api.post("/api/notice-templates/library-add/", {"tid": "1002", "kid_list": [1, 2]},
                    format="json").status_code == 403  # fmt: skip


# --- WeChat's value rules, when a push is saved ----------------------------------------------------------------------


def test_a_notice_push_with_a_value_that_breaks_wechats_rules_is_refused_naming_the_field(staff_api, template):
    segment = SegmentFactory()
    bad = {"thing1": "这是一个超过二十个字符的商品名称真的很长很长很长", "time3": "明天下午", "amount4": "¥99.00"}
    resp = staff_api.post("/api/pushes/", {"name": "Shipped", "channel": "notice", "notice_template": template.pk,
                                           "notice_values": bad, "segment": segment.pk}, format="json")  # fmt: skip

    assert resp.status_code == 400
    fields = resp.json()["extra"]["fields"]
    assert set(fields) == {"notice_values.thing1", "notice_values.time3"}
    assert "20" in fields["notice_values.thing1"][0]
    assert not Push.objects.exists()

    good = {**bad, "thing1": "休闲运动鞋", "time3": "2026年12月1日 15:01"}
    ok = staff_api.post("/api/pushes/", {"name": "Shipped", "channel": "notice", "notice_template": template.pk,
                                         "notice_values": good, "segment": segment.pk}, format="json")  # fmt: skip
    assert ok.status_code == 201, ok.json()
    edit = staff_api.patch(f"/api/pushes/{ok.json()['id']}/", {"notice_values": {**good, "amount4": "免费"}},
                           format="json")  # fmt: skip
    assert edit.status_code == 400 and set(edit.json()["extra"]["fields"]) == {"notice_values.amount4"}


def test_the_push_admin_shows_the_broken_value_as_a_form_error_naming_it(staff_client, template):
    segment = SegmentFactory()
    data = {"name": "Shipped", "channel": "notice", "notice_template": template.pk, "segment": segment.pk,
            "notice_values": '{"thing1": "休闲运动鞋", "time3": "15:01", "amount4": "九十九元"}', "text": "",
            "ignore_quiet_hours": ""}  # fmt: skip
    resp = staff_client.post(reverse("admin:content_push_add"), data)

    assert resp.status_code == 200
    errors = resp.context["adminform"].form.errors
    assert any(e.startswith("amount4:") for e in errors["notice_values"]), errors
    assert not Push.objects.exists()


def test_wechats_rules_on_each_kind_of_keyword():
    ok = {"thing1": "周年庆", "number2": "12.5", "letter3": "abc", "symbol4": "!!", "character_string5": "SF-123",
          "time6": "2019年10月1日 15:01", "date7": "2019-10-01~2019-10-07", "amount8": "¥99.50",
          "phone_number9": "+86-0766-66888866", "car_number10": "粤A8Z888挂", "name11": "张三",
          "phrase12": "配送中"}  # fmt: skip
    assert {key: notice_rules.value_error(key, value) for key, value in ok.items()} == dict.fromkeys(ok)
    bad = {"thing1": "x" * 21, "number2": "12a", "letter3": "ab1", "symbol4": "!!!!!!", "character_string5": "中文",
           "time6": "25:00", "date7": "2019/10-01", "amount8": "99美元", "phone_number9": "1" * 18,
           "car_number10": "粤A8Z888挂X", "name11": "一二三四五六七八九十一", "phrase12": "配送中ab", "thing13": "a\nb",
           "thing14": ""}  # fmt: skip
    assert all(notice_rules.value_error(key, value) for key, value in bad.items())


# --- consent from WeChat's events ------------------------------------------------------------------------------------


def _popup(*items, openid=OPENID, event="subscribe_msg_popup_event", create_time=None):
    container = "SubscribeMsgPopupEvent" if event.endswith("popup_event") else "SubscribeMsgChangeEvent"
    entries = [{"TemplateId": t, "SubscribeStatusString": s, "PopupScene": "2"} for t, s in items]
    return build_message(event, event=True, openid=openid, create_time=create_time,
                         **{container: {"List": entries[0] if len(entries) == 1 else entries}})  # fmt: skip


def _run_follow_ups():
    from accounts.models import Interaction
    from wechat_crm.wechat import dispatch

    pending = list(Interaction.objects.filter(processed_at__isnull=True).order_by("created_at", "id"))
    dispatch.follow_ups_run(pending)


def test_the_gateway_reads_one_item_or_several():
    one = {"SubscribeMsgChangeEvent": {"List": {"TemplateId": "t1", "SubscribeStatusString": "reject"}}}
    several = {"SubscribeMsgPopupEvent": {"List": [
        {"TemplateId": "t1", "SubscribeStatusString": "accept"},
        {"TemplateId": "t2", "SubscribeStatusString": "Reject"},
    ]}}  # fmt: skip
    sent = {"SubscribeMsgSentEvent": {"List": {"TemplateId": "t1", "MsgID": "170", "ErrorCode": "0",
                                               "ErrorStatus": "success"}}}  # fmt: skip
    assert [(i.template_id, i.status) for i in notice_items("subscribe_msg_change_event", one)] == [("t1", "reject")]
    assert [i.status for i in notice_items("subscribe_msg_popup_event", several)] == ["accept", "reject"]
    [item] = notice_items("subscribe_msg_sent_event", sent)
    assert (item.msg_id, item.error_code, item.error_status) == (170, 0, "success")


def test_popup_and_change_events_become_consent_with_history(wechat_callback):
    wechat_callback.post(_popup(("tmpl_a", "accept"), ("tmpl_b", "reject"), create_time=1_800_000_000))
    wechat_callback.post(_popup(("tmpl_a", "accept"), create_time=1_800_000_010))
    wechat_callback.post(_popup(("tmpl_a", "accept"), create_time=1_800_000_010))  # WeChat's retry: stored once
    _run_follow_ups()
    subscriber = Subscriber.objects.get(openid=OPENID)
    a = NoticeConsent.objects.get(subscriber=subscriber, template_id="tmpl_a")
    assert (a.accepted, a.credits) == (True, 2)
    assert not NoticeConsent.objects.get(subscriber=subscriber, template_id="tmpl_b").accepted

    wechat_callback.post(_popup(("tmpl_a", "reject"), event="subscribe_msg_change_event", create_time=1_800_000_020))
    _run_follow_ups()
    _run_follow_ups()  # a follow-up run twice records nothing twice
    a.refresh_from_db()
    assert (a.accepted, a.credits) == (False, 0)
    history = list(NoticeConsentChange.objects.filter(template_id="tmpl_a").order_by("at")
                   .values_list("decision", flat=True))  # fmt: skip
    assert history == ["accept", "accept", "withdraw"]


def test_a_late_older_decision_does_not_undo_a_newer_one(wechat_callback):
    wechat_callback.post(_popup(("tmpl_a", "reject"), event="subscribe_msg_change_event", create_time=1_800_000_020))
    _run_follow_ups()
    wechat_callback.post(_popup(("tmpl_a", "accept"), create_time=1_800_000_000))  # delivered late
    _run_follow_ups()
    consent = NoticeConsent.objects.get(template_id="tmpl_a")
    assert not consent.accepted and NoticeConsentChange.objects.count() == 2


def test_consent_selectors_know_one_time_and_long_term_templates():
    one_time = NoticeTemplate.objects.create(template_id="t1", title="one", kind=NoticeTemplate.Kind.ONE_TIME)
    long_term = NoticeTemplate.objects.create(template_id="t3", title="long", kind=NoticeTemplate.Kind.LONG_TERM)
    used, fresh = SubscriberFactory(), SubscriberFactory()
    for sub, credits in ((used, 0), (fresh, 1)):
        for t in (one_time, long_term):
            NoticeConsent.objects.create(subscriber=sub, template_id=t.template_id, accepted=True, credits=credits,
                                         changed_at="2026-01-01T00:00:00Z")  # fmt: skip
    ids = [used.pk, fresh.pk]
    assert notices.notice_consented_ids(subscriber_ids=ids, template=one_time) == {fresh.pk}
    assert notices.notice_consented_ids(subscriber_ids=ids, template=long_term) == {used.pk, fresh.pk}
    assert notices.notice_consented(subscriber_id=fresh.pk, template=one_time)


def test_the_admin_syncs_adds_from_the_library_and_shows_consents_on_the_subscriber(staff_client, fake):
    changelist = reverse("admin:content_noticetemplate_changelist")
    assert staff_client.get(changelist).status_code == 200
    library = staff_client.get(reverse("admin:content_noticetemplate_library") + "?tid=1002")
    assert library.status_code == 200 and "活动开始提醒" in library.content.decode()
    added = staff_client.post(reverse("admin:content_noticetemplate_library"),
                              {"tid": "1002", "kid_list": "1,2", "scene_desc": "活动"})  # fmt: skip
    template = NoticeTemplate.objects.get()
    assert added.status_code == 302 and template.keys == ["thing1", "time2"]
    refused = staff_client.post(reverse("admin:content_noticetemplate_library"), {"tid": "1002", "kid_list": "1"})
    assert refused.status_code == 200 and refused.context["form"].errors["kid_list"]
    assert staff_client.post(reverse("admin:content_noticetemplate_sync")).status_code == 302

    subscriber = SubscriberFactory()
    NoticeConsent.objects.create(subscriber=subscriber, template_id=template.template_id, accepted=True, credits=1,
                                 changed_at="2026-01-01T00:00:00Z")  # fmt: skip
    page = staff_client.get(reverse("admin:accounts_subscriber_change", args=[subscriber.pk]))
    assert page.status_code == 200 and "活动开始提醒" in page.content.decode()
    for name in ("noticeconsent", "noticeconsentchange"):
        assert staff_client.get(reverse(f"admin:content_{name}_changelist")).status_code == 200


def test_the_fake_wechat_answers_bizsend_with_wechats_codes(fake, template):
    token = fake.fetch_token()
    fake.add_users([{"openid": OPENID, "subscribe": 1}])
    good = {"thing1": {"value": "休闲运动鞋"}, "time3": {"value": "15:01"}, "amount4": {"value": "¥99"}}

    def send(**body):
        return fake.api("/cgi-bin/message/subscribe/bizsend", {"touser": OPENID, "template_id": template.template_id,
                                                                "data": good, **body}, access_token=token)  # fmt: skip

    assert send()["errcode"] == 43101  # not accepted
    assert send(template_id="nope")["errcode"] == 40037
    assert send(data={**good, "thing1": {"value": "x" * 21}})["errcode"] == 47003
    assert send(touser="oUnknown")["errcode"] == 40003
    fake.notices_decide(OPENID, accept=[template.template_id])
    assert fake.notices(OPENID) == {template.template_id: {"accepted": 1, "credits": 1}}
    assert send()["errcode"] == 0 and send()["errcode"] == 43101  # a one-time acceptance allows one notice
    fake.notices_decide(OPENID, accept=[template.template_id])
    fake.notices_decide(OPENID, withdraw=[template.template_id])
    assert send()["errcode"] == 43101


@pytest.mark.usefixtures("english")
def test_the_subscriber_timeline_says_what_the_person_decided(wechat_callback):
    from wechat_crm.timeline import subscriber_timeline

    wechat_callback.post(_popup(("tmpl_a", "accept"), ("tmpl_b", "reject"), create_time=1_800_000_000))
    [entry] = subscriber_timeline(subscriber=Subscriber.objects.get(openid=OPENID))
    assert entry["kind"] == "consent" and entry["detail"] == "accepted tmpl_a; rejected tmpl_b"


def test_wechats_refusal_of_a_library_title_is_a_400_naming_it_and_a_deleted_template_in_use_is_kept(
    staff_api, template
):
    keywords = staff_api.get("/api/notice-templates/library/999/")
    assert keywords.status_code == 400 and list(keywords.json()["extra"]["fields"]) == ["tid"]
    added = staff_api.post("/api/notice-templates/library-add/", {"tid": "999", "kid_list": [1, 2]}, format="json")
    assert added.status_code == 400 and "tid" in added.json()["extra"]["fields"]

    push = Push.objects.create(name="p", channel="notice", notice_template=template, segment=SegmentFactory())
    assert staff_api.delete(f"/api/notice-templates/{template.pk}/").status_code == 204
    assert not NoticeTemplate.objects.get(pk=template.pk).on_wechat and push.notice_template_id == template.pk
    assert staff_api.delete(f"/api/notice-templates/{template.pk}/").status_code == 204  # gone on WeChat: fine


# --- sending: who the consent rule skips, and when -------------------------------------------------------------------


def _notice_push(template, segment, **fields) -> Push:
    return pushes.push_create(name="Notice", channel=Push.Channel.NOTICE, notice_template=template,
                              notice_values={"thing1": "发货", "time3": "15:01", "amount4": "1元"},
                              segment=segment, **fields)  # fmt: skip


def _consent(sub, template, *, accepted=True, credits=1) -> None:
    NoticeConsent.objects.update_or_create(subscriber=sub, template_id=template.template_id,
                                           defaults={"accepted": accepted, "credits": credits,
                                                     "changed_at": "2026-01-01T00:00:00Z"})  # fmt: skip


def _sent_before(sub, *, times: int = 1) -> None:
    """`times` pushes delivered to the person yesterday (they count against caps)."""
    now = timezone.now()
    for _ in range(times):
        Delivery.objects.create(push=PushFactory(status=Push.Status.SENT), subscriber=sub, channel="template",
                                status="delivered", claimed_at=now - dt.timedelta(days=1), created_at=now)  # fmt: skip


def test_a_notice_push_skips_whoever_has_not_consented_when_it_writes_its_recipients(fake_sending, template):
    """Those the consent rule refuses are skipped with `no_consent` when the push's recipients are written (the
    report shows them at once, no page claims them); a person an earlier rule refuses keeps that rule's reason;
    consent is checked again when a page sends (a withdrawal meanwhile skips the person); only the others reach
    WeChat, once each, and each uses their acceptance."""
    people = {name: SubscriberFactory(nickname=name) for name in
              ("accepts", "silent", "used", "paused", "capped", "withdraws")}  # fmt: skip
    fake_sending.add_users([{"openid": s.openid, "subscribe": 1} for s in people.values()])
    for name in ("accepts", "withdraws"):
        fake_sending.notices_decide(people[name].openid, accept=[template.template_id], post=False)
        _consent(people[name], template)
    _consent(people["used"], template, credits=0)  # a one-time acceptance already used
    Subscriber.objects.filter(pk=people["paused"].pk).update(pushes_paused=True)
    Subscriber.objects.filter(pk=people["capped"].pk).update(max_pushes_per_week=1)
    _sent_before(people["capped"])
    push = _notice_push(template, SegmentFactory(rules={}))
    pushes.push_schedule(push=push, send_at=timezone.now())
    assert pushes.pushes_claim_due(push_id=push.pk) == [push.pk]
    push.refresh_from_db()

    assert pushes.push_resolve(push=push) == 6
    assert reasons(push) == {"no_consent": {"silent", "used"}}
    report = push_report(push=push)
    assert (report["recipients"], report["skipped_by_reason"]) == (6, {"no_consent": 2})
    assert set(Delivery.objects.filter(push=push, status="skipped").values_list("attempts", flat=True)) == {0}

    NoticeConsent.objects.filter(subscriber=people["withdraws"]).update(accepted=False, credits=0)
    for lo, hi in pushes.push_pages(push_id=push.pk, size=pushes.page_size(push.channel)):
        deliveries_send_page(push_id=push.pk, lo=lo, hi=hi, threads=2)

    assert reasons(push) == {"no_consent": {"silent", "used", "withdraws"}, "paused": {"paused"},
                             "frequency_cap": {"capped"}}  # fmt: skip
    assert Delivery.objects.get(push=push, subscriber=people["accepts"]).status == "sent"
    calls = fake_sending.calls("/cgi-bin/message/subscribe/bizsend")
    assert [c["body"]["touser"] for c in calls if c["errcode"] == 0] == [people["accepts"].openid]
    assert not NoticeConsent.objects.get(subscriber=people["accepts"]).credits
    push.refresh_from_db()
    assert push.status == Push.Status.SENT
    assert push_report(push=push)["skipped_by_reason"] == {"no_consent": 3, "paused": 1, "frequency_cap": 1}
    counters = tallies.push_tallies(push_ids=[push.pk])[push.pk]
    assert +counters - tallies.recount(push_id=push.pk) == {k: v for k, v in counters.items() if "baseline" in k}


def test_the_consent_rule_set_based_agrees_with_the_policy_person_by_person(fake_sending, template):
    """`policy.consent_refusals` (a push's recipients, in SQL) refuses for consent exactly those `decide_many`
    refuses with no_consent, whatever else is true of them, for one-time and long-term templates, with and
    without the push's own cap."""
    long_term = NoticeTemplate.objects.create(
        template_id="tmpl_long", title="long", kind=NoticeTemplate.Kind.LONG_TERM, keywords=template.keywords
    )
    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.set([topic])
    people = []
    situations = itertools.product((True, False), (False, True), (False, True), (None, 0, 1, 5), (0, 2),
                                   ("none", "fresh", "used", "withdrawn"))  # fmt: skip
    for following, paused, opted_out, own_cap, recent, consent in situations:
        sub = SubscriberFactory(is_following=following, pushes_paused=paused, max_pushes_per_week=own_cap)
        if opted_out:
            sub.topics_opted_out.set([topic])
        _sent_before(sub, times=recent)
        for t in (template, long_term):
            if consent != "none":
                _consent(sub, t, accepted=consent != "withdrawn", credits=int(consent == "fresh"))
        people.append(sub.pk)
    now = timezone.now()
    seen = set()
    for notice_template in (template, long_term):
        for push_cap in (None, 1, 3):
            push = _notice_push(notice_template, SegmentFactory(rules={}), article=article, frequency_cap=push_cap)
            send = policy.Send.for_push(push)
            decided = policy.decide_many(send=send, subscriber_ids=people, now=now)
            expected = {pk for pk, d in decided.items() if d.reason == policy.Reason.NO_CONSENT}
            rows = policy.consent_refusals(send=send, subscribers=Subscriber.objects.filter(pk__in=people), now=now)
            assert {pk for pk, refused in rows.values_list("pk", "consent_refused") if refused} == expected
            seen |= {d.reason for d in decided.values()}
    assert {"no_consent", "not_following", "paused", "topic_opt_out", "frequency_cap", ""} <= seen
