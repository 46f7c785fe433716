"""The catch-up of a backlog (accounts.catch_up, `manage.py interactions_catch_up`): every pending interaction's
follow-ups run once, whatever the number of processes and the batch size, with the stage columns and the funnel
summary the rules give."""

from datetime import datetime, time, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts import catch_up
from accounts.models import Interaction, Subscriber
from campaigns.cells import cells_differences
from campaigns.summary import summary_differences
from conversations.models import ScoreEntry
from tests.accounts.factories import InteractionFactory, SubscriberFactory
from tests.content.factories import ArticleFactory
from tests.conversations.factories import ScoreRuleFactory
from wechat_crm.wechat import dispatch

N = 24  # subscribers; 4 pending interactions each


def _backlog(article) -> dict[int, dict]:
    """N subscribers who followed on the same local day a minute apart, each with 3 more interactions, all pending
    and received in the order they happened (a batch cuts through several subscribers' histories). Even ones text,
    click the article's link the next day and text again (engaged, then interactive: 3 interactions on 2 days);
    odd ones text twice the same day (only followed). Returns each subscriber's expected stage columns."""
    day = timezone.localdate() - timedelta(days=10)
    t0 = timezone.make_aware(datetime.combine(day, time(10, 0)))
    expected = {}
    rows = []
    for n in range(N):
        subscriber = SubscriberFactory(followed_at=None)
        at = t0 + timedelta(minutes=n)
        if n % 2 == 0:
            kinds = [("subscribe", at), ("text", at + timedelta(hours=1)), ("link_click", at + timedelta(days=1)),
                     ("text", at + timedelta(days=1, hours=1))]  # fmt: skip
            expected[subscriber.pk] = {"stage": "interactive", "followed_at": at, "engaged_at": kinds[2][1],
                                       "interactive_at": kinds[3][1], "engaged_content_id": article.pk}  # fmt: skip
        else:
            kinds = [("subscribe", at), ("text", at + timedelta(hours=1)), ("text", at + timedelta(hours=2)),
                     ("text", at + timedelta(hours=3))]  # fmt: skip
            expected[subscriber.pk] = {"stage": "followed", "followed_at": at, "engaged_at": None,
                                       "interactive_at": None, "engaged_content_id": None}  # fmt: skip
        rows += [(created, kind, subscriber) for kind, created in kinds]
    for created, kind, subscriber in sorted(rows, key=lambda row: row[0]):
        data = {"content_id": article.pk, "engaged": True} if kind == "link_click" else {}
        InteractionFactory(subscriber=subscriber, kind=kind, data=data, created_at=created, received_at=created,
                           processed_at=None)  # fmt: skip
    return expected


def _stage_columns() -> dict[int, dict]:
    fields = ["stage", "followed_at", "engaged_at", "interactive_at", "engaged_content_id"]
    return {row.pop("pk"): row for row in Subscriber.objects.values("pk", *fields)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("processes", "batch"), [(1, 5), (2, 7)])
def test_a_backlog_is_processed_once_with_the_stages_the_rules_give(processes, batch):
    ScoreRuleFactory(kind="text", points=3)
    expected = _backlog(ArticleFactory())

    result = catch_up.interactions_catch_up(run=dispatch.follow_ups_run, batch=batch, processes=processes)

    assert (result.processed, result.failed) == (4 * N, 0)
    assert not Interaction.objects.filter(processed_at__isnull=True).exists()
    assert _stage_columns() == expected
    assert ScoreEntry.objects.filter(interaction__isnull=False).count() == 2 * (N // 2) + 3 * (N // 2)  # once each text
    assert summary_differences() == [] and cells_differences() == []  # the summary and its cells kept exact
    again = catch_up.interactions_catch_up(run=dispatch.follow_ups_run, batch=batch, processes=processes)
    assert again.processed == 0


@pytest.mark.django_db(transaction=True)
def test_it_leaves_what_arrives_after_it_started_to_the_worker():
    _backlog(ArticleFactory())
    started = timezone.now()
    later = InteractionFactory(kind="text", created_at=started, received_at=started + timedelta(seconds=1),
                               processed_at=None)  # fmt: skip

    result = catch_up.interactions_catch_up(run=dispatch.follow_ups_run, batch=10, received_before=started)

    assert result.processed == 4 * N
    assert list(Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True)) == [later.pk]


@pytest.mark.django_db(transaction=True)
def test_an_interaction_whose_follow_ups_fail_stays_pending_and_the_others_are_processed():
    _backlog(ArticleFactory())
    bad = Interaction.objects.filter(kind="link_click").order_by("received_at")[3]

    def run(interactions):
        if any(interaction.pk == bad.pk for interaction in interactions):
            raise RuntimeError("this follow-up fails")
        dispatch.follow_ups_run(interactions)

    result = catch_up.interactions_catch_up(run=run, batch=10)

    assert result.processed == 4 * N - 1
    assert list(Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True)) == [bad.pk]


@pytest.mark.django_db(transaction=True)
def test_the_command_processes_the_backlog():
    expected = _backlog(ArticleFactory())
    out = StringIO()

    call_command("interactions_catch_up", processes=2, batch=9, stdout=out)

    assert f"{4 * N} interactions processed" in out.getvalue()
    assert _stage_columns() == expected
