"""`manage.py sync_followers`: imports the account's followers from the fake WeChat server (user/get pages of
10,000 and batchget), resumes after a stop or an error from its saved cursor, and never duplicates a subscriber."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import FollowerSync, Subscriber
from accounts.tasks import follower_sync_task

USER_GET = "/cgi-bin/user/get"
BATCHGET = "/cgi-bin/user/info/batchget"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture(autouse=True)
def _user_calls_unthrottled(settings):
    settings.WECHAT_RATE_LIMITS = {**settings.WECHAT_RATE_LIMITS, "user": (0.0, 1)}  # no local limit in the test


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("sync_followers", "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _user_get_cursors(fake) -> list[str]:
    return [c["query"].get("next_openid", "") for c in fake.calls(USER_GET)]


def test_25000_followers_are_imported_over_pages_resumed_from_the_cursor_and_not_duplicated(fake):
    openids = fake.add_users(generate=25_000, seed=7)
    fake.add_users(generate=10, subscribe=0)  # people who left: not listed by user/get, not imported

    out = _run("--max-pages", "1")
    assert "Stopped after 1 pages" in out
    sync = FollowerSync.objects.get()
    assert sync.status == FollowerSync.Status.RUNNING
    assert sync.imported == 10_000 and sync.total == 25_000
    assert sync.next_openid == openids[9_999]
    assert Subscriber.objects.count() == 10_000

    fake.clear_calls()
    out = _run()
    assert "Done: 25000 followers imported" in out
    # It continued from the saved cursor, not from the first page.
    assert _user_get_cursors(fake)[0] == openids[9_999]
    assert "" not in _user_get_cursors(fake)
    sync.refresh_from_db()
    assert sync.status == FollowerSync.Status.DONE and sync.imported == 25_000 and sync.created == 25_000
    assert Subscriber.objects.count() == 25_000
    assert set(Subscriber.objects.values_list("openid", flat=True)) == set(openids)
    assert not Subscriber.objects.filter(is_following=False).exists()
    assert not Subscriber.objects.filter(profile_fetched_at__isnull=True).exists()  # profiles came with the import
    assert all(len(c["body"]["user_list"]) <= 100 for c in fake.calls(BATCHGET, limit=200))

    # A second import walks the list again and creates nothing new.
    out = _run()
    assert "(0 new subscribers)" in out
    assert Subscriber.objects.count() == 25_000


def test_a_wechat_error_exits_non_zero_with_a_message_and_the_next_run_resumes(fake):
    openids = fake.add_users(generate=250, seed=8)
    fake.configure(user_get_page_size=100)
    _run("--max-pages", "1")
    # The next user/get (the second page) is refused: 45009, the daily quota.
    fake.configure(faults=[{"path": USER_GET, "errcode": 45009, "times": 1}])

    with pytest.raises(CommandError, match="Run the command again to resume from page 2"):
        _run()
    sync = FollowerSync.objects.get()
    assert sync.status == FollowerSync.Status.FAILED and "45009" in sync.error
    assert sync.imported == 100

    fake.clear_calls()
    out = _run()
    assert "Done: 250 followers imported" in out
    assert _user_get_cursors(fake)[0] == openids[99]
    assert Subscriber.objects.count() == 250
    assert set(Subscriber.objects.values_list("openid", flat=True)) == set(openids)


def test_restart_starts_from_the_first_page(fake):
    fake.add_users(generate=30, seed=9)
    fake.configure(user_get_page_size=10)
    _run("--max-pages", "1")
    fake.clear_calls()

    _run("--restart")

    assert _user_get_cursors(fake)[0] == ""
    assert FollowerSync.objects.filter(status=FollowerSync.Status.DONE).count() == 2
    assert Subscriber.objects.count() == 30


def test_the_sync_task_imports_like_the_command(fake):
    fake.add_users(generate=120, seed=10)

    assert follower_sync_task.run() == 120

    assert Subscriber.objects.filter(is_following=True).count() == 120


def test_a_second_import_while_one_runs_exits_with_a_message(fake, settings):
    import psycopg
    from django.db import connection

    from accounts.followers import FOLLOWER_SYNC_LOCK

    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [FOLLOWER_SYNC_LOCK])  # another process is importing
        with pytest.raises(CommandError, match="Another follower import is running"):
            _run()
    assert fake.count(USER_GET) == 0


def test_the_terminal_shows_a_progress_bar(fake):
    fake.add_users(generate=250, seed=11)
    fake.configure(user_get_page_size=100)
    err = io.StringIO()

    call_command("sync_followers", stdout=io.StringIO(), stderr=err)

    assert "250/250" in err.getvalue() and "100%" in err.getvalue()


def test_imported_followers_of_a_channel_are_attributed_to_it(fake):
    from accounts.models import Tag
    from campaigns.models import Channel, ChannelTouch

    tag = Tag.objects.create(name="poster")
    channel = Channel.objects.create(name="Poster", scene_str="poster-2025", url="http://weixin.qq.com/q/p")
    channel.tags.add(tag)
    fake.add_users(
        [
            {
                "openid": "oImportedPoster_00000000001",
                "qr_scene_str": "poster-2025",
                "subscribe_scene": "ADD_SCENE_QR_CODE",
            },
            {"openid": "oImportedOther_000000000001", "qr_scene_str": "made-elsewhere"},
            {"openid": "oImportedSearch_00000000001"},
        ]
    )

    _run()
    _run("--restart")  # a second import attributes nobody twice

    poster = Subscriber.objects.get(openid="oImportedPoster_00000000001")
    assert poster.source_channel == channel and list(poster.tags.all()) == [tag]
    assert ChannelTouch.objects.filter(channel=channel, kind="follow").count() == 1
    assert Subscriber.objects.filter(source_channel__isnull=False).count() == 1
