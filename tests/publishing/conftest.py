"""Helpers of the publishing tests: images of a given format and size, an article with a cover and a body image,
and a news push, made through the API like an operator would."""

from __future__ import annotations

import io
import random

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from accounts.models import Subscriber
from content.models import Article, Push, SendPolicy


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), *, noise: bool = False) -> bytes:
    image = Image.new("RGB", size, "#07c160")
    if noise:  # incompressible: a file of about width * height * 3 bytes
        rng = random.Random(1)
        image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size[0] * size[1])])
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def upload(client, *, kind: str, data: bytes, name: str):
    return client.post("/api/media/", {"kind": kind, "title": name, "file": ContentFile(data, name=name)})


def account(kind: str, **fields) -> SendPolicy:
    policy = SendPolicy.current()
    policy.account_type = kind
    policy.quiet_hours_enabled = False
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.save()
    return policy


@pytest.fixture
def article_with_images(staff_client):
    """An article with a JPEG cover and an image in its body from the media library (uploaded through the API)."""
    body_image = upload(staff_client, kind="body", data=image_bytes("PNG"), name="chart.png")
    assert body_image.status_code == 201, body_image.json()
    article = Article.objects.create(
        title="春季新品指南",
        digest="三分钟读懂新品",
        author="编辑部",
        body=f"# 新品\n\n正文第一段。\n\n![图表]({body_image.json()['url']})\n\n> 引用",
    )
    article.cover.save("cover.jpg", ContentFile(image_bytes("JPEG", (900, 500))))
    return article


def followers(fake, n: int, prefix: str = "oNews") -> list[Subscriber]:
    subs = Subscriber.objects.bulk_create(
        Subscriber(openid=f"{prefix}{i:05d}xxxxxxxxxxxxxxxx", is_following=True) for i in range(n)
    )
    fake.add_users([{"openid": s.openid} for s in subs])
    return subs


def news_push(client, **fields) -> Push:
    response = client.post(
        "/api/pushes/", {"name": "周报", "channel": "news", **fields}, content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    return Push.objects.get(pk=response.json()["id"])
