"""The dispatch table: every kind of interaction has a route, and the table is the same whatever the order of
INSTALLED_APPS (nothing is registered at start-up)."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts import kinds
from accounts.kinds import InteractionKind
from accounts.models import Interaction
from tests.accounts.factories import InteractionFactory
from wechat_crm.wechat import dispatch

ROOT = Path(__file__).resolve().parents[3]
OUR_APPS = ["accounts", "content", "campaigns", "conversations"]

DESCRIBE = """
import importlib, json, os, sys
settings = importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
ours = [app for app in settings.INSTALLED_APPS if app in {apps!r}]
others = [app for app in settings.INSTALLED_APPS if app not in ours]
settings.INSTALLED_APPS = others + {order!r}
import django
django.setup()
from wechat_crm.wechat import dispatch

def name(handler):
    return f"{{handler.__module__}}.{{handler.__qualname__}}"

print(json.dumps({{
    kind: [name(route.record), [name(r) for r in route.replies], [name(f) for f in route.follow_ups]]
    for kind, route in dispatch.ROUTES.items()
}}, sort_keys=True))
"""


def _table_with_apps_in(order: list[str]) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "wechat_crm.settings.test")}
    result = subprocess.run(
        [sys.executable, "-c", DESCRIBE.format(apps=OUR_APPS, order=order)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_kind_of_the_enumeration_has_a_route_and_every_route_is_a_kind():
    assert set(dispatch.ROUTES) == set(InteractionKind.values)


def test_the_table_is_the_same_whatever_the_order_of_installed_apps():
    as_configured = _table_with_apps_in(OUR_APPS)
    reversed_order = _table_with_apps_in(list(reversed(OUR_APPS)))

    assert as_configured == reversed_order
    assert as_configured["subscribe"][2][0] == "accounts.events.profile_fetch_later"


def test_the_follow_ups_of_every_kind_are_each_given_once_in_one_order():
    """The worker runs each follow-up once per batch; a follow-up that two routes put in opposite orders would
    make the batch's order ambiguous."""
    assert dispatch.FOLLOW_UP_ORDER  # every follow-up of the table, in an order that agrees with every route
    for route in dispatch.ROUTES.values():
        positions = [dispatch.FOLLOW_UP_ORDER.index(f) for f in route.follow_ups]
        assert positions == sorted(positions)
        assert len(set(route.follow_ups)) == len(route.follow_ups)


def test_a_message_from_a_subscriber_moves_last_interaction_at_before_anything_else_follows():
    """The callback leaves last_interaction_at of a subscriber we hold to the first follow-up (accounts.touch), so
    that what follows in the batch (auto-replies, journeys, the send policy) reads it moved; a table that forgets
    the touch, or a kind the readers that cannot wait (kinds.TOUCHED_LATER) do not know of, is refused at import."""
    from django.core.exceptions import ImproperlyConfigured

    from accounts import events

    for kind in kinds.TOUCHED_LATER:
        assert dispatch.ROUTES[kind].follow_ups[0] is events.touch
    assert dispatch.FOLLOW_UP_ORDER.index(events.touch) < dispatch.FOLLOW_UP_ORDER.index(dispatch.conversations.score)

    forgot = {**dispatch.ROUTES, "text": dispatch.Route(follow_ups=(dispatch.campaigns.stage_advance,))}
    with pytest.raises(ImproperlyConfigured, match=r"accounts\.touch"):
        dispatch.touch_check(forgot, dispatch.DEFAULT_ROUTE)
    unnamed = {**dispatch.ROUTES, "location_event": dispatch.Route(follow_ups=(events.touch,))}
    with pytest.raises(ImproperlyConfigured, match="TOUCHED_LATER"):
        dispatch.touch_check(unnamed, dispatch.DEFAULT_ROUTE)


def test_the_named_groups_of_kinds_are_kinds_of_the_enumeration():
    groups = [kinds.MESSAGES, kinds.MENU_EVENTS, kinds.SUBSCRIBER_ORIGINATED, kinds.WINDOW_OPENING, kinds.ENGAGING,
              kinds.MENU_CLICKS, kinds.SYSTEM_REPORTS, kinds.TOUCHED_LATER]  # fmt: skip
    for group in groups:
        assert group <= set(InteractionKind.values)
    assert InteractionKind.LOCATION_EVENT not in kinds.SUBSCRIBER_ORIGINATED | kinds.WINDOW_OPENING
    assert InteractionKind.VIEW not in kinds.WINDOW_OPENING
    assert InteractionKind.LINK_CLICK not in kinds.WINDOW_OPENING


@pytest.mark.django_db
def test_the_migration_gives_stored_location_events_their_own_kind():
    from django.apps import apps

    migration = importlib.import_module("accounts.migrations.0011_interaction_kinds_location_event")
    message = InteractionFactory(kind="location", data={"MsgType": "location"})
    event = InteractionFactory(kind="location", data={"MsgType": "event", "Event": "LOCATION"})

    migration.location_events_renamed(apps, None)

    assert Interaction.objects.get(pk=message.pk).kind == "location"
    assert Interaction.objects.get(pk=event.pk).kind == "location_event"
