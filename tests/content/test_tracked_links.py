import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from freezegun import freeze_time

from accounts.models import Interaction
from content import links, selectors, services
from tests.helpers import clicks_drained

from .factories import ArticleFactory, MessageTemplateFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

TARGET = "https://shop.example.com/item/42?utm_source=wechat&ref=push"


def _path(url: str) -> str:
    return urlsplit(url).path


def test_click_records_one_interaction_and_redirects(client):
    subscriber = SubscriberFactory()
    article = ArticleFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk, push_id=77, content_id=article.pk)

    response = client.get(_path(url))

    assert response.status_code == 302
    assert response["Location"] == TARGET
    assert clicks_drained() == 1
    click = Interaction.objects.get(kind="link_click")
    assert click.subscriber_id == subscriber.pk
    assert click.data == {"push_id": 77, "content_id": article.pk, "link_id": click.data["link_id"], "engaged": True}
    assert click.url == TARGET
    subscriber.refresh_from_db()
    assert subscriber.last_interaction_at == click.created_at


def test_repeated_clicks_within_the_window_count_once_and_later_visits_count_again(client, settings):
    """Within TRACKED_LINK_CLICK_WINDOW seconds one person's repeated clicks of one link are one click (a double tap,
    a reload, a bot replaying the link); a visit after the window is one more click."""
    settings.TRACKED_LINK_CLICK_WINDOW = 300
    subscriber, other = SubscriberFactory(), SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    cache.delete_many([f"link_click:{s.pk}:{links.link_id_for(TARGET)}:0" for s in (subscriber, other)])

    with freeze_time("2026-03-02 10:00:00"):
        for _ in range(3):
            assert client.get(_path(url)).status_code == 302
        client.get(_path(services.link_track(TARGET, subscriber_id=other.pk)))
    with freeze_time("2026-03-02 10:04:00"):
        assert client.get(_path(url)).status_code == 302  # still within the window: the same click
    assert clicks_drained() == 2
    assert selectors.link_clicks().filter(subscriber=subscriber).count() == 1
    assert selectors.link_clicks().filter(subscriber=other).count() == 1  # another person's click counts
    cache.delete(f"link_click:{subscriber.pk}:{links.link_id_for(TARGET)}:0")  # the window has passed (Redis TTL)
    with freeze_time("2026-03-02 10:06:00"):
        assert client.get(_path(url)).status_code == 302
    assert clicks_drained() == 1

    clicks = selectors.link_clicks().filter(subscriber=subscriber)
    assert clicks.count() == 2
    assert len({c.dedupe_key for c in clicks}) == 2


@pytest.mark.django_db(transaction=True)  # the view runs in autocommit, as in production
def test_without_the_cache_the_time_slot_still_counts_a_repeat_once(client, settings):
    settings.TRACKED_LINK_CLICK_WINDOW = 300
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    with freeze_time("2026-03-02 10:00:10"):
        for _ in range(2):
            cache.delete(f"link_click:{subscriber.pk}:{links.link_id_for(TARGET)}:0")  # as if Redis had lost it
            assert client.get(_path(url)).status_code == 302
    assert clicks_drained() == 1
    assert selectors.link_clicks().filter(subscriber=subscriber).count() == 1


def test_clicks_are_attributed_to_their_push_and_content(client):
    a, b = SubscriberFactory(), SubscriberFactory()
    article = ArticleFactory()
    client.get(_path(services.link_track(TARGET, subscriber_id=a.pk, push_id=1, content_id=article.pk)))
    client.get(_path(services.link_track(TARGET, subscriber_id=b.pk, push_id=2)))
    clicks_drained()

    assert list(selectors.link_clicks(push_id=1).values_list("subscriber_id", flat=True)) == [a.pk]
    assert list(selectors.link_clicks(content_id=article.pk).values_list("subscriber_id", flat=True)) == [a.pk]
    assert selectors.link_clicks(push_id=2).get().subscriber_id == b.pk


def test_tracked_url_holds_no_openid_and_is_short():
    subscriber = SubscriberFactory(openid="oSecretOpenId_ABCDEFGHIJKLMNOP")
    long_target = "https://shop.example.com/" + "x" * 1500

    url = services.link_track(long_target, subscriber_id=subscriber.pk, push_id=123456, content_id=99)

    assert url.startswith(settings.PUBLIC_BASE_URL.rstrip("/") + "/r/")
    assert subscriber.openid not in url
    assert "oSecret" not in url
    token = _path(url).rsplit("/", 1)[1]
    assert len(token) <= 60
    assert "shop.example.com" not in url


def test_tampered_token_is_refused_and_records_nothing(client):
    subscriber, other = SubscriberFactory(), SubscriberFactory()
    path = _path(services.link_track(TARGET, subscriber_id=subscriber.pk))
    token = path.rsplit("/", 1)[1]
    payload, timestamp, signature = token.split(".")
    # Claim to be another subscriber, keep the signature.
    forged_payload = payload.replace(payload.split("-")[0], services.links.b62encode(other.pk), 1)
    forged = f"/r/{forged_payload}.{timestamp}.{signature}"
    flipped = path[:-1] + ("A" if path[-1] != "A" else "B")

    for bad in (forged, flipped, "/r/garbage", "/r/a.b.c", path[:-5]):
        response = client.get(bad)
        assert response.status_code == 400, bad
        assert "not valid" in response.content.decode()
        assert "Location" not in response

    assert clicks_drained() == 0
    assert not Interaction.objects.exists()


def test_links_signed_before_a_secret_key_rotation_still_work_and_others_do_not(client, settings):
    subscriber = SubscriberFactory()
    settings.SECRET_KEY = "the-secret-key-of-last-year-0123456789-abcdefghijklmnop"
    old_path = _path(services.link_track(TARGET, subscriber_id=subscriber.pk))
    settings.SECRET_KEY = "the-secret-key-of-this-year-0123456789-abcdefghijklmno"

    assert client.get(old_path).status_code == 400  # signed with a key we no longer hold

    settings.SECRET_KEY_FALLBACKS = ["the-secret-key-of-last-year-0123456789-abcdefghijklmnop"]
    response = client.get(old_path)
    new_path = _path(services.link_track(TARGET, subscriber_id=subscriber.pk))

    assert response.status_code == 302
    assert response["Location"] == TARGET
    assert new_path != old_path  # new links are signed with the current key
    assert client.get(new_path).status_code == 302
    assert clicks_drained() == 1  # both clicks in one window: one click


def test_expired_token_is_gone_and_records_nothing(client):
    subscriber = SubscriberFactory()
    with freeze_time("2026-01-01 00:00:00"):
        url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    with freeze_time("2026-01-01 00:00:00") as frozen:
        frozen.move_to(timezone.now() + timedelta(days=181))
        response = client.get(_path(url))

    assert response.status_code == 410
    page = response.content.decode()
    assert "expired" in page
    # The URL is one we signed, so the page may offer it as a link, but it does not redirect.
    assert "shop.example.com/item/42" in page
    assert "Location" not in response
    assert clicks_drained() == 0
    assert not Interaction.objects.exists()


@override_settings(TRACKED_LINK_MAX_AGE_DAYS=1)
def test_max_age_is_configurable(client):
    subscriber = SubscriberFactory()
    with freeze_time("2026-03-01 12:00:00"):
        url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    with freeze_time("2026-03-02 11:00:00"):
        assert client.get(_path(url)).status_code == 302
    with freeze_time("2026-03-02 13:00:00"):
        assert client.get(_path(url)).status_code == 410


def test_redirect_makes_no_query_and_the_drain_stores_a_batch_in_one_statement(client):
    subscribers = SubscriberFactory.create_batch(5)
    paths = [_path(services.link_track(TARGET, subscriber_id=s.pk, push_id=5)) for s in subscribers]
    client.get(paths[0])  # the process learns the link's URL (link rows never change)

    with CaptureQueriesContext(connection) as ctx:
        for path in paths[1:]:
            assert client.get(path)["Location"] == TARGET
    assert ctx.captured_queries == []

    with CaptureQueriesContext(connection) as ctx:
        assert clicks_drained() == 5
    # The savepoint exists only because the test runs inside a transaction (the task runs in autocommit).
    statements = [q["sql"].split()[0] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert statements == ["WITH"]  # INSERT ... ON CONFLICT DO NOTHING, and last_interaction_at, in one statement
    assert set(selectors.link_clicks().values_list("subscriber_id", flat=True)) == {s.pk for s in subscribers}


def test_head_request_redirects_without_recording(client):
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)

    response = client.head(_path(url))

    assert response.status_code == 302
    assert clicks_drained() == 0
    assert not Interaction.objects.exists()


def test_click_of_an_erased_subscriber_redirects_without_a_record(client):
    subscriber = SubscriberFactory()
    url = services.link_track(TARGET, subscriber_id=subscriber.pk)
    subscriber.delete()

    response = client.get(_path(url))

    assert response.status_code == 302
    assert clicks_drained() == 0
    assert not Interaction.objects.exists()


def test_opening_content_through_a_tracked_link_makes_the_subscriber_engaged(client):
    subscriber = SubscriberFactory()
    article = services.article_publish(article=ArticleFactory())
    assert selectors.subscriber_engaged_at(subscriber_id=subscriber.pk) is None
    url = services.link_track(article.public_url(), subscriber_id=subscriber.pk, content_id=article.pk)

    response = client.get(_path(url), follow=True)

    assert response.status_code == 200
    assert article.title in response.content.decode()
    clicks_drained()
    click = Interaction.objects.get(kind="link_click")
    assert selectors.subscriber_engaged_at(subscriber_id=subscriber.pk) == click.created_at


def test_last_interaction_time_never_goes_backwards(client):
    later = timezone.now() + timedelta(days=1)
    subscriber = SubscriberFactory(last_interaction_at=later)
    client.get(_path(services.link_track(TARGET, subscriber_id=subscriber.pk)))
    assert clicks_drained() == 1

    subscriber.refresh_from_db()
    assert subscriber.last_interaction_at == later


@override_settings(PUBLIC_BASE_URL="https://crm.example.com/")
def test_links_are_absolute_on_the_public_base_url():
    url = services.link_track(TARGET, subscriber_id=1)

    assert re.fullmatch(r"https://crm\.example\.com/r/[A-Za-z0-9_.\-]+", url)


def test_rewrite_tracks_every_http_link_in_text_and_html(client):
    subscriber = SubscriberFactory()
    text = "新品 https://a.example.com/x?y=1&z=2，看看。Also (see http://b.example.com/p). Mail me@example.com"
    html = (
        '<p>Hi <a href="https://c.example.com/?a=1&amp;b=2">shop</a> '
        '<img src="https://img.example.com/i.png"> '
        "<a href='mailto:x@example.com'>mail</a> visit https://d.example.com/now</p>"
    )

    out_text = services.links_rewrite(text, subscriber_id=subscriber.pk, push_id=3)
    out_html = services.links_rewrite(html, subscriber_id=subscriber.pk, push_id=3)

    assert "a.example.com" not in out_text and "b.example.com" not in out_text
    assert out_text.startswith("新品 http") and "，看看。" in out_text and out_text.count("/r/") == 2
    assert out_text.rstrip().endswith("Mail me@example.com")
    assert "(see http" in out_text and ")." in out_text
    assert "c.example.com" not in out_html and "d.example.com" not in out_html
    assert 'src="https://img.example.com/i.png"' in out_html
    assert "href='mailto:x@example.com'" in out_html
    assert out_html.count("/r/") == 2
    # Idempotent: tracked links are not wrapped again.
    assert services.links_rewrite(out_text, subscriber_id=subscriber.pk) == out_text

    targets = []
    for path in re.findall(r"/r/[A-Za-z0-9_.\-]+", out_text + out_html):
        targets.append(client.get(path)["Location"])
    assert targets == [
        "https://a.example.com/x?y=1&z=2",
        "http://b.example.com/p",
        "https://c.example.com/?a=1&b=2",
        "https://d.example.com/now",
    ]
    clicks_drained()
    assert selectors.link_clicks(push_id=3).count() == 4


def test_template_url_tracks_the_article_or_the_link(client):
    subscriber = SubscriberFactory()
    article = services.article_publish(article=ArticleFactory())
    to_article = MessageTemplateFactory(article=article)
    to_url = MessageTemplateFactory(link_url=TARGET)
    nowhere = MessageTemplateFactory()

    article_link = services.template_url(to_article, subscriber_id=subscriber.pk, push_id=9)
    url_link = services.template_url(to_url, subscriber_id=subscriber.pk, push_id=9)

    assert services.template_url(nowhere, subscriber_id=subscriber.pk) == ""
    assert client.get(_path(article_link))["Location"] == article.public_url()
    assert client.get(_path(url_link))["Location"] == TARGET
    assert clicks_drained() == 2
    assert selectors.link_clicks(content_id=article.pk).count() == 1


def test_only_http_urls_can_be_tracked():
    with pytest.raises(ValueError, match="http"):
        services.link_track("javascript:alert(1)", subscriber_id=1)


def test_rewrite_in_text_with_angle_brackets_that_are_not_tags():
    out = services.links_rewrite("I <3 https://a.example.com/x > all", subscriber_id=1)

    assert "a.example.com" not in out
    assert out.startswith("I <3 http") and out.endswith(" > all")


@freeze_time("2026-05-04 10:00:00")
def test_a_pages_tracked_links_are_signed_as_one_link_alone_is(client):
    """A push's page signs each recipient's link with the key derived once; the token is the one Django's signer
    makes for that link alone, and opening it records the click."""
    subscribers = SubscriberFactory.create_batch(3)
    track = services.link_tracker(TARGET, push_id=77, content_id=None)
    link_id = links.link_id_for(TARGET)

    for subscriber in subscribers:
        url = track(subscriber.pk)
        payload = links.LinkPayload(subscriber_id=subscriber.pk, push_id=77, content_id=None, link_id=link_id)
        assert _path(url).rsplit("/", 1)[1] == links.token_make(payload)
        assert client.get(_path(url))["Location"] == TARGET

    assert clicks_drained() == 3
    assert set(Interaction.objects.values_list("subscriber_id", flat=True)) == {s.pk for s in subscribers}
