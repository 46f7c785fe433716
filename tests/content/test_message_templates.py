import json

import pytest

from content import services, templating
from content.errors import TemplateInvalid
from content.models import MessageTemplate

from .factories import ArticleFactory, MessageTemplateFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def _fields(value: str) -> list[dict]:
    return [{"key": "first", "value": value, "color": ""}]


def test_fields_render_per_subscriber_with_defaults():
    article = services.article_publish(article=ArticleFactory(title="新品上市"))
    template = services.template_create(
        title="New product",
        wechat_template_id="TPL1",
        article=article,
        fields=[
            {"key": "first", "value": '{{ subscriber.remark|default:"朋友" }}，你好', "color": "#173177"},
            {"key": "keyword1", "value": "{{ article.title }}", "color": ""},
            {"key": "remark", "value": "{% if subscriber.city %}{{ subscriber.city }}门店见{% endif %}"},
        ],
    )
    with_remark = SubscriberFactory(remark="王先生", city="上海")
    without_remark = SubscriberFactory(remark="")

    first = services.template_render(template, subscriber=with_remark)
    second = services.template_render(template, subscriber=without_remark)

    assert first == {
        "first": {"value": "王先生，你好", "color": "#173177"},
        "keyword1": {"value": "新品上市"},
        "remark": {"value": "上海门店见"},
    }
    assert second["first"]["value"] == "朋友，你好"
    assert second["remark"]["value"] == ""


def test_values_are_plain_text_not_html_escaped():
    template = services.template_create(
        title="t", wechat_template_id="T", fields=_fields("{{ subscriber.nickname }} & co")
    )

    data = services.template_render(template, subscriber=SubscriberFactory(nickname="<Tom & Jerry>"))

    assert data["first"]["value"] == "<Tom & Jerry> & co"


def test_push_context_and_a_subscriber_mapping_render():
    template = services.template_create(
        title="t",
        wechat_template_id="T",
        fields=_fields("{{ push.name }}: {{ article.title }} for {{ subscriber.nickname }}"),
    )
    context = services.template_context(article=ArticleFactory(title="A1"), push={"id": 7, "name": "Weekly"})

    data = services.template_render(template, subscriber={"nickname": "Li", "remark": ""}, context=context)

    assert data["first"]["value"] == "Weekly: A1 for Li"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ subscriber.openid }}", 'Unknown variable "subscriber.openid"'),
        ("{{ user.password }}", 'Unknown variable "user.password"'),
        ("{{ subscriber.nickname|default:customer.name }}", 'Unknown variable "customer.name"'),
        ("{% if secret %}x{% endif %}", 'Unknown variable "secret"'),
        ("{{ subscriber }}", 'Unknown variable "subscriber"'),
        ("{{ subscriber.nickname", "Unclosed"),
        ("Hi }}", "Unclosed"),
        ("{% if %}", "Template syntax error"),
        ("{{ subscriber.nickname|nosuchfilter }}", "Template syntax error"),
        ("{% load static %}", "Template syntax error"),
        ('{% include "x.html" %}', "is not allowed"),
        ("{% for x in article.title %}{{ x }}{% endfor %}", "is not allowed"),
        ("{% debug %}", "is not allowed"),
    ],
)
def test_bad_values_are_refused_on_save_with_a_clear_message(value, expected):
    with pytest.raises(TemplateInvalid) as excinfo:
        services.template_create(title="t", wechat_template_id="T", fields=_fields(value))

    assert expected in excinfo.value.message
    assert "first" in excinfo.value.extra["fields"]
    assert not MessageTemplate.objects.exists()


def test_names_bound_by_with_and_firstof_are_known():
    value = "{% with name=subscriber.nickname %}{{ name }}{% endwith %}{% firstof subscriber.remark 'x' as r %}{{ r }}"

    assert templating.value_check(value) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([], "at least one field"),
        ("not a list", "must be a list"),
        ([{"key": "first", "value": "a"}, {"key": "first", "value": "b"}], "used twice"),
        ([{"key": "1bad", "value": "a"}], "The key must be"),
        ([{"key": "first", "value": "a", "color": "red"}], "colour"),
        ([{"key": "first", "value": 3}], "must be text"),
        ([{"key": "first", "value": "a", "size": 3}], "Unknown attributes"),
    ],
)
def test_malformed_fields_are_refused(fields, expected):
    with pytest.raises(TemplateInvalid, match=expected):
        templating.fields_check(fields)


def test_changing_a_template_changes_its_rendering():
    template = services.template_create(title="t", wechat_template_id="T", fields=_fields("v1"))
    subscriber = SubscriberFactory()
    assert services.template_render(template, subscriber=subscriber)["first"]["value"] == "v1"

    services.template_update(template=template, data={"fields": _fields("v2 {{ subscriber.nickname }}")})

    assert template.version == 2
    fresh = MessageTemplate.objects.get(pk=template.pk)
    assert services.template_render(fresh, subscriber=subscriber)["first"]["value"] == f"v2 {subscriber.nickname}"


def test_rendering_compiles_once_per_version(django_assert_num_queries):
    template = MessageTemplateFactory()
    subscribers = [SubscriberFactory(remark="") for _ in range(3)]
    compiled = templating.compiled_for(template)

    with django_assert_num_queries(0):
        context = services.template_context(article={"title": "T"})
        for s in subscribers:
            services.template_render(template, subscriber=s, context=context)
    assert templating.compiled_for(template) is compiled


def test_link_url_and_article_are_exclusive():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="either a link URL or an article"):
        services.template_create(
            title="t",
            wechat_template_id="T",
            fields=_fields("x"),
            link_url="https://a.example/",
            article=ArticleFactory(),
        )


def test_admin_form_shows_the_template_error_and_saves_nothing(staff_client):
    response = staff_client.post(
        "/admin/content/messagetemplate/add/",
        {
            "title": "Bad",
            "wechat_template_id": "TPL",
            "fields": json.dumps(_fields("Hi {{ subscriber.openid }}")),
            "link_url": "",
            "article": "",
            "miniprogram_appid": "",
            "miniprogram_pagepath": "",
        },
    )

    assert response.status_code == 200
    errors = response.context_data["adminform"].form.errors
    assert 'Unknown variable "subscriber.openid"' in " ".join(errors["fields"])
    assert not MessageTemplate.objects.exists()


def test_admin_form_refuses_a_syntax_error_and_invalid_json(staff_client):
    base = {"title": "Bad", "wechat_template_id": "TPL", "link_url": "", "article": ""}
    base |= {"miniprogram_appid": "", "miniprogram_pagepath": ""}

    syntax = staff_client.post(
        "/admin/content/messagetemplate/add/", base | {"fields": json.dumps(_fields("{% if x == %}{% endif %}"))}
    )
    not_json = staff_client.post("/admin/content/messagetemplate/add/", base | {"fields": "[{"})

    assert "Template syntax error" in " ".join(syntax.context_data["adminform"].form.errors["fields"])
    assert not_json.context_data["adminform"].form.errors["fields"]
    assert not MessageTemplate.objects.exists()


def test_admin_saves_a_valid_template_and_bumps_its_version(staff_client):
    data = {
        "title": "Good",
        "purpose": "service",
        "wechat_template_id": "TPL",
        "fields": json.dumps(_fields('{{ subscriber.remark|default:"朋友" }}')),
        "link_url": "https://shop.example.com/",
        "article": "",
        "miniprogram_appid": "",
        "miniprogram_pagepath": "",
    }
    assert staff_client.post("/admin/content/messagetemplate/add/", data).status_code == 302
    template = MessageTemplate.objects.get()
    assert template.version == 1

    change = staff_client.get(f"/admin/content/messagetemplate/{template.pk}/change/")
    assert "朋友" in change.content.decode()  # the sample rendering
    assert staff_client.post(f"/admin/content/messagetemplate/{template.pk}/change/", data).status_code == 302
    template.refresh_from_db()
    assert template.version == 2


def test_a_push_page_renders_each_recipient_as_the_engine_does():
    """The page's renderer does most of the work once (content.templating.FieldsRenderer): it must give every
    recipient exactly what the template engine gives, whatever the field's shape and the value's type."""
    article = services.article_publish(article=ArticleFactory(title="新品 & 上市"))
    template = services.template_create(
        title="t",
        wechat_template_id="T",
        article=article,
        fields=[
            {"key": "first", "value": "你好 {{ subscriber.nickname }}，{{ subscriber.city }}!", "color": "#173177"},
            {"key": "keyword1", "value": "{{ article.title }} / {{ push.name|upper }}", "color": ""},
            {"key": "keyword2", "value": '{{ subscriber.remark|default:"朋友" }}', "color": ""},
            {"key": "keyword3", "value": "{% if subscriber.city %}{{ subscriber.city }}门店{% endif %}", "color": ""},
            {"key": "keyword4", "value": "{{ subscriber.subscribed_at }} {{ subscriber.id }}", "color": ""},
            {"key": "remark", "value": "plain text", "color": ""},
        ],
    )
    context = services.template_context(article=article, push={"id": 7, "name": "spring", "send_at": None})
    renderer = templating.FieldsRenderer(templating.compiled_for(template), context)
    subscribers = [
        {"id": 1, "nickname": "<Tom & Jerry>", "remark": "", "city": "上海", "subscribed_at": None},
        {
            "id": 2,
            "nickname": "",
            "remark": "王先生",
            "city": "",
            "subscribed_at": templating.SAMPLE_CONTEXT["push"]["send_at"],
        },
        {"id": 3, "nickname": 42, "remark": None},
    ]
    for subscriber in subscribers:
        expected = services.template_render(template, subscriber=subscriber, context=context)
        assert renderer(subscriber) == expected
    assert renderer(subscribers[0])["first"] == {"value": "你好 <Tom & Jerry>，上海!", "color": "#173177"}
    assert renderer(subscribers[2])["keyword4"]["value"].endswith(" 3")
