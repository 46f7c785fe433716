import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from content import services
from content.models import Article, MessageTemplate

from .factories import ArticleFactory, MarketerFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(anonymous_api):
    anonymous_api.force_authenticate(MarketerFactory())
    return anonymous_api


def _png(size=(4, 4)) -> SimpleUploadedFile:
    buf = io.BytesIO()
    Image.new("RGB", size, "red").save(buf, "PNG")
    return SimpleUploadedFile("cover.png", buf.getvalue(), content_type="image/png")


@pytest.mark.parametrize("path", ["/api/contents/", "/api/templates/", "/api/topics/"])
def test_anonymous_requests_get_401_json(anonymous_api, path):
    response = anonymous_api.get(path)

    assert response.status_code == 401
    assert response.json()["message"]


def test_list_filters_by_topic_and_status(reader):
    tea, coffee = TopicFactory(name="Tea", slug="tea"), TopicFactory(name="Coffee", slug="coffee")
    a = ArticleFactory(title="Green tea")
    a.topics.add(tea)
    b = services.article_publish(article=ArticleFactory(title="Black tea"))
    b.topics.add(tea)
    c = services.article_publish(article=ArticleFactory(title="Espresso"))
    c.topics.add(coffee)

    tea_titles = {r["title"] for r in reader.get("/api/contents/", {"topic": "tea"}).json()["results"]}
    published_tea = reader.get("/api/contents/", {"topic": "tea", "status": "published"}).json()
    bad_status = reader.get("/api/contents/", {"status": "nope"})

    assert tea_titles == {"Green tea", "Black tea"}
    assert [r["title"] for r in published_tea["results"]] == ["Black tea"]
    assert published_tea["results"][0]["topics"] == ["tea"]
    assert published_tea["results"][0]["url"].endswith(f"/c/{b.slug}/")
    assert bad_status.status_code == 400


def test_non_staff_cannot_write(reader):
    article = ArticleFactory()

    assert reader.post("/api/contents/", {"title": "x"}, format="json").status_code == 403
    assert reader.patch(f"/api/contents/{article.pk}/", {"title": "y"}, format="json").status_code == 403
    assert reader.post(f"/api/contents/{article.pk}/publish/").status_code == 403
    assert reader.post("/api/templates/", {}, format="json").status_code == 403


def test_staff_creates_edits_and_publishes_an_article(staff_api, client):
    TopicFactory(name="Tea", slug="tea")

    created = staff_api.post(
        "/api/contents/",
        {"title": "春茶上新", "body": "**Fresh** <script>x()</script>", "topics": ["tea"], "status": "published"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "draft"  # status is read-only: publishing is an action
    assert body["slug"].isascii() and body["slug"]
    assert "<script" not in body["body_html"]
    article_id = body["id"]

    edited = staff_api.patch(f"/api/contents/{article_id}/", {"digest": "Spring"}, format="json")
    published = staff_api.post(f"/api/contents/{article_id}/publish/")
    again = staff_api.post(f"/api/contents/{article_id}/publish/")

    assert edited.json()["digest"] == "Spring"
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert again.status_code == 400 and "already" in again.json()["message"]
    assert client.get(f"/c/{body['slug']}/").status_code == 200


def test_duplicate_slug_is_a_400(staff_api):
    ArticleFactory(slug="taken")

    response = staff_api.post("/api/contents/", {"title": "x", "slug": "taken"}, format="json")

    assert response.status_code == 400
    assert "slug" in response.json()["extra"]["fields"]


def test_cover_upload_accepts_images_and_refuses_other_files(staff_api):
    ok = staff_api.post("/api/contents/", {"title": "With cover", "cover": _png()}, format="multipart")
    not_image = staff_api.post(
        "/api/contents/",
        {"title": "Bad", "cover": SimpleUploadedFile("cover.png", b"not an image", content_type="image/png")},
        format="multipart",
    )

    assert ok.status_code == 201, ok.json()
    assert ok.json()["cover"].endswith(".png")
    assert not_image.status_code == 400
    assert "cover" in not_image.json()["extra"]["fields"]
    assert Article.objects.count() == 1


def test_cover_larger_than_the_limit_is_refused(staff_api, monkeypatch):
    from content import validators

    monkeypatch.setattr(validators, "COVER_MAX_BYTES", 10)

    response = staff_api.post("/api/contents/", {"title": "Big", "cover": _png()}, format="multipart")

    assert response.status_code == 400
    assert "largest allowed" in str(response.json()["extra"]["fields"]["cover"])


def test_template_with_an_unknown_variable_is_a_400_with_a_clear_message(staff_api):
    response = staff_api.post(
        "/api/templates/",
        {
            "title": "Bad",
            "wechat_template_id": "TPL",
            "fields": [{"key": "first", "value": "{{ subscriber.openid }}"}],
        },
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    assert 'Unknown variable "subscriber.openid"' in body["message"]
    assert "first" in body["extra"]["fields"]
    assert not MessageTemplate.objects.exists()


def test_template_with_a_syntax_error_is_a_400(staff_api):
    response = staff_api.post(
        "/api/templates/",
        {"title": "Bad", "wechat_template_id": "TPL", "fields": [{"key": "first", "value": "{% if %}x{% endif %}"}]},
        format="json",
    )

    assert response.status_code == 400
    assert "syntax" in response.json()["message"].lower()


def test_staff_creates_and_updates_a_template(staff_api):
    article = ArticleFactory()
    created = staff_api.post(
        "/api/templates/",
        {
            "title": "Welcome",
            "wechat_template_id": "TPL",
            "article": article.pk,
            "fields": [{"key": "first", "value": '{{ subscriber.remark|default:"朋友" }}', "color": "#173177"}],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    template_id = created.json()["id"]

    updated = staff_api.patch(
        f"/api/templates/{template_id}/",
        {"fields": [{"key": "first", "value": "Hi {{ subscriber.nickname }}"}]},
        format="json",
    )
    both_links = staff_api.patch(
        f"/api/templates/{template_id}/", {"link_url": "https://x.example.com/"}, format="json"
    )
    reader = APIClient()
    reader.force_authenticate(MarketerFactory())
    listed = reader.get("/api/templates/", {"article": article.pk}).json()

    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert both_links.status_code == 400
    assert listed["count"] == 1
    assert listed["results"][0]["fields"] == [{"key": "first", "value": "Hi {{ subscriber.nickname }}", "color": ""}]


def test_topics_get_a_slug_from_their_name(staff_api):
    response = staff_api.post("/api/topics/", {"name": "Green Tea"}, format="json")

    assert response.status_code == 201
    assert response.json()["slug"] == "green-tea"
