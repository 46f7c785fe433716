"""A push's message for one recipient, built by the gateway's builders (wechat_crm.wechat.messages) from the
push's values: its template's rendered fields and tracked link, or its article's card, or its text."""

from __future__ import annotations

from typing import Any

from wechat_crm.wechat import messages
from wechat_crm.wechat.messages import Payload

from ...models import Push


class Renderer:
    """One recipient's message. The context shared by the page's recipients is built once."""

    def __init__(self, push: Push):
        from .. import links_rewrite, template_context, template_render, template_url

        self.push = push
        self._render, self._url, self._rewrite = template_render, template_url, links_rewrite
        self.context = template_context(article=push.article, push=push)
        template = push.template
        self._miniprogram = (
            messages.MiniProgram(appid=template.miniprogram_appid, pagepath=template.miniprogram_pagepath)
            if template is not None
            else None
        )

    def template(self, sub: dict[str, Any]) -> Payload:
        """A template message: the template's fields rendered for the recipient, and its tracked link."""
        t = self.push.template
        return messages.template_message(
            openid=sub["openid"],
            template_id=t.wechat_template_id,
            data=self._render(t, subscriber=sub, context=self.context),
            url=self._url(t, subscriber_id=sub["id"], push_id=self.push.pk),
            miniprogram=self._miniprogram,
        )

    def notice(self, sub: dict[str, Any]) -> Payload:
        """A subscription notice: the template's values (checked when the push was saved), opening the article
        through its tracked link (or nothing)."""
        push, article = self.push, self.push.article
        page = ""
        if article is not None:
            from .. import link_track

            page = link_track(article.public_url(), subscriber_id=sub["id"], push_id=push.pk, content_id=article.pk)
        return messages.subscription_notice(
            openid=sub["openid"], template_id=push.notice_template.template_id, data=push.notice_values, page=page
        )

    def custom(self, sub: dict[str, Any]) -> Payload:
        """A customer-service message: the article's card with its tracked link, or the text with tracked links."""
        push, article = self.push, self.push.article
        if article is not None:
            from .. import link_track

            card = messages.NewsArticle(
                title=article.title,
                description=article.digest,
                url=link_track(article.public_url(), subscriber_id=sub["id"], push_id=push.pk, content_id=article.pk),
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
