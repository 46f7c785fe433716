"""Small helpers shared by tests."""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, message: str | Callable[[], str] = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail the test with `message` after `timeout` seconds (a
    callable message is called then, to describe what was found)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(text or f"condition not met within {timeout} s")
        time.sleep(interval)


def migration_data_restore() -> None:
    """Re-create what the migrations insert (built-in conversion types, the funnel settings row, the role groups):
    a transactional test's flush removes it for the tests after it. Runs the migration's own idempotent code."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    roles = importlib.import_module("campaigns.migrations.0003_conversion_types_settings_roles")
    roles.forwards(apps, SimpleNamespace(connection=connection))


def wechat_shared_state_clear(appid: str) -> None:
    """Forget the outbound rate-limit buckets (Redis), the cached access token of `appid` and its refresh lock: the
    test starts with full quotas and fetches a token of its own."""
    from django.core.cache import cache

    from wechat_crm.wechat import ratelimit
    from wechat_crm.wechat.tokens import cache_key, lock_key

    client = ratelimit.redis_client()
    if client is not None:
        for key in client.scan_iter("wechat:ratelimit:*"):
            client.delete(key)
        client.delete(lock_key(appid))
    cache.delete(cache_key(appid))
    cache.delete(lock_key(appid))


def token_fetched(fake):
    """The fake WeChat server with a valid shared access token already fetched and no calls recorded yet."""
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import WeChatInvalidToken

    try:
        get_client().tag.get()
    except WeChatInvalidToken:  # the reset fake refused both our token and the one another process cached
        get_client().tag.get()
    fake.clear_calls()
    return fake


def changelist_cells(page: str, field: str) -> list[str]:
    """The text of a changelist column's cells (`<td class="field-<name> ...">`), whatever classes the admin adds."""
    import re

    cells = re.findall(rf'<td class="field-{re.escape(field)}[ "][^>]*>(.*?)</td>', page, flags=re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


# Our interaction kinds as WeChat's callback fields (MsgType, Event); link_click is ours: WeChat never hears of it.
WECHAT_FIELDS = {"subscribe": ("event", "subscribe"), "scan": ("event", "SCAN"), "click": ("event", "CLICK"),
                 "view": ("event", "VIEW"), "location_event": ("event", "LOCATION"),
                 "scancode_push": ("event", "scancode_push"),
                 "scancode_waitmsg": ("event", "scancode_waitmsg")}  # fmt: skip


def person_did(subscriber, kind: str, at, *, fake=None, **fields):
    """What a person did, as the callback stores it (an accounts.Interaction row), and, when `fake` is given, as
    WeChat knows it (the fake WeChat server's customer-service window opens on what WeChat counts). Returns the row."""
    import uuid

    from accounts.models import Interaction

    row = Interaction.objects.create(subscriber=subscriber, kind=kind, dedupe_key=f"t:{uuid.uuid4().hex}",
                                     raw_xml="", created_at=at, received_at=at, processed_at=at, **fields)  # fmt: skip
    if fake is not None and kind != "link_click":
        msgtype, event = WECHAT_FIELDS.get(kind, (kind, None))
        fake.interact(subscriber.openid, msgtype, event=event, at=at.timestamp())
    return row


def client_as(django_user_model, role: str):
    """An API client authenticated as a staff user in the `role` group (marketer, operator, admin, integration);
    `anonymous` gives a client that is not logged in."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    client = APIClient()
    if role != "anonymous":
        user = django_user_model.objects.create_user(username=f"api_{role}", password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_authenticate(user)
    return client


def follow_ups_run() -> int:
    """Run the follow-ups of every pending interaction in this process, by batches, as the worker runs them (for
    tests without the Celery worker, whose on_commit hand-over never fires). Returns how many were processed."""
    from accounts import follow_ups
    from wechat_crm.wechat import dispatch

    done = 0
    while (
        result := follow_ups.interactions_process(run=dispatch.follow_ups_run, limit=follow_ups.PROCESS_BATCH)
    ).claimed:
        done += result.done
    return done


def clicks_drained() -> int:
    """Run the click buffer's drain (content.tasks.link_clicks_drain) as the beat would: every tracked-link click
    answered so far is stored. Returns how many it stored."""
    from content.tasks import link_clicks_drain

    return link_clicks_drain()


def in_threads(count: int, fn: Callable[[int], T], *, timeout: float | None = None) -> list[T]:
    """Run fn(0) .. fn(count - 1) in `count` threads released together (a barrier), each closing its database
    connections when done; their results, in order (None for a thread still running after `timeout` seconds)."""
    from django.db import connections

    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        finally:
            connections.close_all()  # this thread's connections (left open, they outlive the test's database)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results
