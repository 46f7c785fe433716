"""A push's message for one recipient, built by the gateway's builders (wechat_crm.wechat.messages) from the
push's values: its template's rendered fields and tracked link, or its article's card, or its text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wechat_crm.wechat import messages
from wechat_crm.wechat.messages import Payload

from ... import templating
from ...models import Push


class Renderer:
    """One recipient's message. What the page's recipients share is built once: the rendering context, the fields
    that do not read the subscriber (content.templating.FieldsRenderer), the tracked link's target and link row;
    per recipient remain the subscriber's values and the link's signature."""

    def __init__(self, push: Push):
        from .. import links_rewrite, template_context, template_url_maker

        self.push = push
        self._rewrite = links_rewrite
        self.context = template_context(article=push.article, push=push)
        template = push.template
        self._miniprogram = (
            messages.MiniProgram(appid=template.miniprogram_appid, pagepath=template.miniprogram_pagepath)
            if template is not None
            else None
        )
        self._fields = self._url = None
        if template is not None:
            shared = dict(self.context)
            if "article" not in shared and template.article_id is not None:  # as content.services.template_render
                shared["article"] = templating.article_context(template.article)
            self._fields = templating.FieldsRenderer(templating.compiled_for(template), shared)
            self._url = template_url_maker(template, push_id=push.pk)
        self._article_link: Callable[[int], str] | None = None  # built on first use (notices, cards)

    @property
    def subscriber_fields(self) -> tuple[str, ...]:
        """The recipient's fields (besides id and openid) that its message reads: those its template's fields name."""
        return self._fields.subscriber_fields if self._fields is not None else ()

    def article_link(self, subscriber_id: int) -> str:
        """The push's article through its tracked link, for one recipient."""
        if self._article_link is None:
            from .. import link_tracker

            article = self.push.article
            self._article_link = link_tracker(article.public_url(), push_id=self.push.pk, content_id=article.pk)
        return self._article_link(subscriber_id)

    def template(self, sub: dict[str, Any]) -> Payload:
        """A template message: the template's fields rendered for the recipient, and its tracked link."""
        return messages.template_message(
            openid=sub["openid"],
            template_id=self.push.template.wechat_template_id,
            data=self._fields(sub),
            url=self._url(sub["id"]),
            miniprogram=self._miniprogram,
        )

    def notice(self, sub: dict[str, Any]) -> Payload:
        """A subscription notice: the template's values (checked when the push was saved), opening the article
        through its tracked link (or nothing)."""
        push = self.push
        page = self.article_link(sub["id"]) if push.article is not None else ""
        return messages.subscription_notice(
            openid=sub["openid"], template_id=push.notice_template.template_id, data=push.notice_values, page=page
        )

    def custom(self, sub: dict[str, Any]) -> Payload:
        """A customer-service message: the article's card with its tracked link, or the text with tracked links."""
        push, article = self.push, self.push.article
        if article is not None:
            card = messages.NewsArticle(
                title=article.title,
                description=article.digest,
                url=self.article_link(sub["id"]),
                picurl=article.cover_url(),
            )
            return messages.custom_news(openid=sub["openid"], articles=[card])
        text = self._rewrite(push.text, subscriber_id=sub["id"], push_id=push.pk)
        return messages.custom_text(openid=sub["openid"], text=text)

    def mass_text(self) -> str:
        """The text of a mass send: the push's text, or the article's title, digest and address."""
        push, article = self.push, self.push.article
        if push.text.strip():
            return push.text
        return "\n".join(p for p in (article.title, article.digest, article.public_url()) if p)

    def mass_content(self) -> Payload:
        return messages.mass_text(self.mass_text())
