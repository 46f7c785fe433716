"""The lead score: points per interaction kind (ScoreRule), kept on the subscriber, decaying with a half-life."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from accounts.kinds import InteractionKind as Kind
from accounts.models import Interaction, Subscriber

from .models import ScoreEntry, ScoreRule

DEFAULT_SCORE_POINTS = {Kind.SUBSCRIBE: 5, Kind.TEXT: 3, Kind.CLICK: 2, Kind.VIEW: 2, Kind.LINK_CLICK: 4, Kind.SCAN: 2}


def scores_add(*, interactions: Sequence[Interaction]) -> int:
    """The lead score: each interaction adds its kind's points (ScoreRule) to its subscriber's score, once (one
    ScoreEntry per interaction, unique: a batch run twice adds nothing the second time). On PostgreSQL one statement
    for the batch (the rules joined in SQL, the entries inserted, the scores added); elsewhere at most four. Returns
    the points added."""
    scored = [i for i in interactions if i.subscriber_id is not None]
    if not scored:
        return 0
    if connection.vendor == "postgresql":
        return _scores_add_postgresql(scored)
    points = dict(ScoreRule.objects.values_list("kind", "points"))
    scored = [i for i in scored if points.get(i.kind)]
    if not scored:
        return 0
    done = set(
        ScoreEntry.objects.filter(interaction_id__in=[i.pk for i in scored]).values_list("interaction_id", flat=True)
    )
    fresh = [i for i in scored if i.pk not in done]
    if not fresh:
        return 0
    ScoreEntry.objects.bulk_create(
        [ScoreEntry(subscriber_id=i.subscriber_id, points=points[i.kind], reason=i.kind, interaction_id=i.pk,
                    at=i.created_at) for i in fresh]
    )  # fmt: skip
    totals: dict[int, int] = {}
    for i in fresh:
        totals[i.subscriber_id] = totals.get(i.subscriber_id, 0) + points[i.kind]
    Subscriber.objects.filter(pk__in=totals).update(
        score=F("score") + Case(*[When(pk=pk, then=Value(n)) for pk, n in totals.items()], output_field=IntegerField())
    )
    return sum(totals.values())


# The entries of the interactions whose kind has points (an interaction that has its entry already: none), then
# their subscribers' scores, in one statement. Subscribers are updated in id order (two workers' batches that share
# subscribers lock them in the same order).
_SCORES_ADD_SQL = """
    WITH v AS (
        SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[], %s::timestamptz[])
            AS v(subscriber_id, kind, interaction_id, at)
    ), entries AS (
        INSERT INTO conversations_scoreentry (subscriber_id, points, reason, interaction_id, at)
        SELECT v.subscriber_id, r.points, v.kind, v.interaction_id, v.at
        FROM v JOIN conversations_scorerule r ON r.kind = v.kind AND r.points <> 0
        ORDER BY v.interaction_id
        ON CONFLICT (interaction_id) DO NOTHING
        RETURNING subscriber_id, points
    ), totals AS (
        SELECT subscriber_id, SUM(points)::integer AS points FROM entries GROUP BY subscriber_id
    ), scored AS (
        UPDATE accounts_subscriber AS s SET score = s.score + t.points
        FROM (SELECT s2.id, totals.points FROM accounts_subscriber s2 JOIN totals ON totals.subscriber_id = s2.id
              ORDER BY s2.id FOR UPDATE OF s2) AS t
        WHERE s.id = t.id
        RETURNING t.points
    )
    SELECT COALESCE(SUM(points), 0) FROM scored
"""


def _scores_add_postgresql(interactions: Sequence[Interaction]) -> int:
    params = [
        [i.subscriber_id for i in interactions],
        [i.kind for i in interactions],
        [i.pk for i in interactions],
        [i.created_at for i in interactions],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_SCORES_ADD_SQL, params)
        return int(cursor.fetchone()[0])


@transaction.atomic
def score_change(*, subscriber_id: int, points: int, reason: str, at: dt.datetime | None = None) -> None:
    ScoreEntry.objects.create(subscriber_id=subscriber_id, points=points, reason=reason[:100], at=at or timezone.now())
    Subscriber.objects.filter(pk=subscriber_id).update(score=F("score") + points)


def scores_change(*, subscriber_ids: Sequence[int], points: int, reason: str, at: dt.datetime | None = None) -> None:
    """`score_change` for several subscribers (each once): one INSERT and one UPDATE."""
    if not subscriber_ids:
        return
    at = at or timezone.now()
    ScoreEntry.objects.bulk_create(
        [ScoreEntry(subscriber_id=pk, points=points, reason=reason[:100], at=at) for pk in subscriber_ids]
    )
    Subscriber.objects.filter(pk__in=list(subscriber_ids)).update(score=F("score") + points)


def score_half_life_days() -> float:
    return float(settings.SCORE_HALF_LIFE_DAYS)


def score_decayed(entries: list[tuple[int, dt.datetime]], *, now: dt.datetime) -> int:
    """The score of (points, at) entries at `now`: each halves every SCORE_HALF_LIFE_DAYS."""
    half = score_half_life_days() * 86400
    return round(sum(p * math.pow(0.5, max((now - at).total_seconds(), 0) / half) for p, at in entries))


def scores_decay(*, now: dt.datetime | None = None) -> int:
    """Recompute every scored subscriber's score from their entries with the decay (ONE statement; daily beat).
    Returns how many subscribers were updated."""
    now = now or timezone.now()
    half = score_half_life_days() * 86400
    s_table, e_table = Subscriber._meta.db_table, ScoreEntry._meta.db_table
    if connection.vendor != "postgresql":  # the embedded default: in Python
        totals: dict[int, list] = {}
        for sid, points, at in ScoreEntry.objects.values_list("subscriber_id", "points", "at"):
            totals.setdefault(sid, []).append((points, at))
        for sid, entries in totals.items():
            Subscriber.objects.filter(pk=sid).update(score=score_decayed(entries, now=now))
        return len(totals)
    sql = (
        f"UPDATE {s_table} s SET score = t.total FROM ("  # noqa: S608
        f"SELECT subscriber_id, ROUND(SUM(points * POWER(0.5, GREATEST(EXTRACT(EPOCH FROM (%s - at)), 0) / %s)))::int "
        f"AS total FROM {e_table} GROUP BY subscriber_id) t WHERE s.id = t.subscriber_id AND s.score <> t.total"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, half])
        return cursor.rowcount
