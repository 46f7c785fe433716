import pytest
from django.urls import reverse

from content import services
from content.errors import ArticleStatusError
from content.models import Article

from .factories import ArticleFactory, StaffFactory, TopicFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_published_article_is_served_as_a_mobile_page(client):
    article = ArticleFactory(title="Spring menu", body="# Fresh\n\nTry our **tea**.\n\n- one\n- two")
    services.article_publish(article=article)

    response = client.get(f"/c/{article.slug}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1' in page
    assert "<h1>Fresh</h1>" in page
    assert "<strong>tea</strong>" in page
    assert "<li>two</li>" in page
    assert "Spring menu" in page


def test_script_in_markdown_never_reaches_the_page(client):
    article = ArticleFactory(
        body=(
            "Hello\n\n<script>alert('x')</script>\n\n"
            '<img src="https://img.example.com/a.png" onerror="alert(1)">\n\n'
            '[click](javascript:alert(2)) <a href="https://ok.example.com/" onclick="steal()">ok</a>\n\n'
            '<iframe src="https://evil.example.com/"></iframe>'
        )
    )
    services.article_publish(article=article)

    page = client.get(article.get_absolute_url()).content.decode()

    assert "<script" not in page.lower()
    assert "onerror" not in page
    assert "onclick" not in page
    assert "javascript:" not in page
    assert "<iframe" not in page
    assert '<img src="https://img.example.com/a.png">' in page
    assert '<a href="https://ok.example.com/">ok</a>' in page


def test_draft_is_404_for_the_public_and_for_non_staff_users(client):
    article = ArticleFactory()

    assert client.get(article.get_absolute_url()).status_code == 404
    client.force_login(UserFactory())
    assert client.get(article.get_absolute_url()).status_code == 404


def test_staff_user_previews_a_draft(client):
    article = ArticleFactory(body="Draft **text**")
    client.force_login(StaffFactory())

    response = client.get(article.get_absolute_url())

    assert response.status_code == 200
    assert "<strong>text</strong>" in response.content.decode()
    assert "private" in response["Cache-Control"]


def test_unpublished_article_is_404_again(client):
    article = services.article_publish(article=ArticleFactory())
    services.article_unpublish(article=article)

    assert client.get(article.get_absolute_url()).status_code == 404


def test_unknown_slug_is_404(client):
    assert client.get("/c/no-such-article/").status_code == 404


def test_chinese_title_gets_a_short_ascii_slug():
    first = services.article_create(title="春季新品上市")
    second = services.article_create(title="春季新品上市")

    assert first.slug and second.slug and first.slug != second.slug
    assert first.slug.isascii() and len(first.slug) <= 16
    assert reverse("content:article-detail", kwargs={"slug": first.slug}) == f"/c/{first.slug}/"


def test_same_latin_title_gets_numbered_slugs():
    a = services.article_create(title="Weekly news")
    b = services.article_create(title="Weekly news")

    assert (a.slug, b.slug) == ("weekly-news", "weekly-news-2")


def test_publishing_twice_is_refused_and_keeps_the_first_date():
    article = services.article_publish(article=ArticleFactory())
    first_published_at = article.published_at

    with pytest.raises(ArticleStatusError):
        services.article_publish(article=article)
    services.article_unpublish(article=article)
    services.article_publish(article=article)

    article.refresh_from_db()
    assert article.status == Article.Status.PUBLISHED
    assert article.published_at == first_published_at


def test_article_without_body_cannot_be_published():
    article = ArticleFactory(body="   ")

    with pytest.raises(ArticleStatusError, match="no body"):
        services.article_publish(article=article)
    article.refresh_from_db()
    assert article.status == Article.Status.DRAFT


def test_editing_the_body_rerenders_the_page(client):
    article = services.article_publish(article=ArticleFactory(body="old text"))

    services.article_update(article=article, data={"body": "*new* text", "topics": [TopicFactory(name="茶")]})

    page = client.get(article.get_absolute_url()).content.decode()
    assert "<em>new</em> text" in page
    assert "old text" not in page
    assert "#茶" in page


def test_admin_publish_action_uses_the_guarded_service(client):
    client.force_login(StaffFactory())
    draft = ArticleFactory()
    published = services.article_publish(article=ArticleFactory())

    response = client.post(
        "/admin/content/article/",
        {"action": "publish_selected", "_selected_action": [draft.pk, published.pk]},
        follow=True,
    )

    assert response.status_code == 200
    draft.refresh_from_db()
    assert draft.status == Article.Status.PUBLISHED
    messages = [str(m) for m in response.context["messages"]]
    assert any("already" in m for m in messages)


def test_admin_creates_an_article_with_a_derived_slug(client):
    client.force_login(StaffFactory())

    response = client.post(
        "/admin/content/article/add/",
        {"title": "新品 Launch", "slug": "", "digest": "", "author": "", "body": "Hi <script>x()</script>"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    article = Article.objects.get()
    assert article.slug == "launch"
    assert "<script" not in article.body_html
    assert article.status == Article.Status.DRAFT


def test_admin_pages_render_for_staff(staff_client):
    from .factories import MessageTemplateFactory

    article = services.article_publish(article=ArticleFactory())
    template = MessageTemplateFactory(article=article)
    topic = TopicFactory()

    for path in [
        "/admin/content/article/",
        "/admin/content/article/add/",
        f"/admin/content/article/{article.pk}/change/",
        f"/admin/content/article/?topics__id__exact={topic.pk}",
        "/admin/content/messagetemplate/",
        "/admin/content/messagetemplate/add/",
        f"/admin/content/messagetemplate/{template.pk}/change/",
        "/admin/content/topic/",
        "/admin/content/topic/add/",
    ]:
        response = staff_client.get(path)
        assert response.status_code == 200, path

    change = staff_client.get(f"/admin/content/article/{article.pk}/change/").content.decode()
    assert f'href="/c/{article.slug}/"' in change


def test_admin_save_and_publish_button(staff_client):
    from django.test import Client

    client = Client()  # anonymous: staff_client shares pytest-django's `client`
    article = ArticleFactory(title="Button", body="old")
    data = {"title": "Button", "slug": article.slug, "digest": "", "author": "", "body": "new **body**"}

    response = staff_client.post(f"/admin/content/article/{article.pk}/change/", data | {"_publish": "1"})

    assert response.status_code == 302
    article.refresh_from_db()
    assert article.status == Article.Status.PUBLISHED
    assert "<strong>body</strong>" in client.get(article.get_absolute_url()).content.decode()

    staff_client.post(f"/admin/content/article/{article.pk}/change/", data | {"_unpublish": "1"})
    article.refresh_from_db()
    assert article.status == Article.Status.DRAFT
    assert client.get(article.get_absolute_url()).status_code == 404


def test_admin_save_and_publish_refuses_an_empty_body(staff_client):
    response = staff_client.post(
        "/admin/content/article/add/",
        {"title": "Empty", "slug": "", "digest": "", "author": "", "body": "", "_publish": "1"},
        follow=True,
    )

    assert any("no body" in str(m) for m in response.context["messages"])
    assert Article.objects.get().status == Article.Status.DRAFT
