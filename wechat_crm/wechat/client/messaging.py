"""Sending messages: template messages, customer-service messages, subscription notices and mass sends.

Single sends and pages return `SendResult`s and never raise for WeChat's refusal (the caller decides by
`result.outcome`); mass sends and previews raise the typed errors of errors.py and return a `MassSent`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import messages, ratelimit
from ..messages import MiniProgram, NewsArticle, Payload, TemplateData

if TYPE_CHECKING:
    from .core import SendResult

TEMPLATE_SEND = "cgi-bin/message/template/send"
CUSTOM_SEND = "cgi-bin/message/custom/send"
SUBSCRIPTION_SEND = "cgi-bin/message/subscribe/bizsend"
MASS_SEND_TO_FILTER = "message/mass/sendall"
MASS_SEND_TO_OPENIDS = "message/mass/send"
MASS_PREVIEW = "message/mass/preview"

BeforeSend = Callable[[int], None]
AfterSend = Callable[[int, "SendResult"], None]


@dataclass(frozen=True, slots=True)
class MassSent:
    """WeChat's ids of an accepted mass send (msg_data_id only for articles)."""

    msg_id: int | None
    msg_data_id: int | None = None


class MessagingMixin:
    # --- pages of messages (pushes) ------------------------------------------------------------------------------
    def send_template_many(
        self,
        messages: Sequence[Payload],
        *,
        threads: int | None = None,
        before_send: BeforeSend | None = None,
        after_send: AfterSend | None = None,
    ) -> list[SendResult]:
        """Template messages built by `messages.template_message`, over the kept-alive pool; one result each."""
        return self.send_many(
            TEMPLATE_SEND, messages, group="template", threads=threads, before_send=before_send, after_send=after_send
        )

    def send_custom_many(
        self,
        messages: Sequence[Payload],
        *,
        threads: int | None = None,
        before_send: BeforeSend | None = None,
        after_send: AfterSend | None = None,
    ) -> list[SendResult]:
        """Customer-service messages built by `messages.custom_*`, over the kept-alive pool; one result each."""
        return self.send_many(
            CUSTOM_SEND, messages, group="custom", threads=threads, before_send=before_send, after_send=after_send
        )

    # --- one message ------------------------------------------------------------------------------------------------
    def send_template_message(self, message: Payload) -> SendResult:
        """One template message built earlier by `messages.template_message` (e.g. stored with an outbound row)."""
        return self.send_template_many([message], threads=1)[0]

    def send_custom_message(self, message: Payload) -> SendResult:
        """One customer-service message built earlier by a `messages.custom_*` builder."""
        return self.send_custom_many([message], threads=1)[0]

    def send_template(
        self,
        *,
        openid: str,
        template_id: str,
        data: TemplateData,
        url: str = "",
        miniprogram: MiniProgram | None = None,
    ) -> SendResult:
        return self.send_template_message(
            messages.template_message(
                openid=openid, template_id=template_id, data=data, url=url, miniprogram=miniprogram
            )
        )

    def send_custom_text(self, *, openid: str, text: str) -> SendResult:
        return self.send_custom_message(messages.custom_text(openid=openid, text=text))

    def send_custom_news(self, *, openid: str, articles: Sequence[NewsArticle]) -> SendResult:
        return self.send_custom_message(messages.custom_news(openid=openid, articles=articles))

    def send_custom_image(self, *, openid: str, media_id: str) -> SendResult:
        return self.send_custom_message(messages.custom_image(openid=openid, media_id=media_id))

    def send_custom_mpnews(self, *, openid: str, media_id: str) -> SendResult:
        return self.send_custom_message(messages.custom_mpnews(openid=openid, media_id=media_id))

    def send_subscription_notice(
        self,
        *,
        openid: str,
        template_id: str,
        data: Mapping[str, str],
        page: str = "",
        miniprogram: MiniProgram | None = None,
    ) -> SendResult:
        message = messages.subscription_notice(
            openid=openid, template_id=template_id, data=data, page=page, miniprogram=miniprogram
        )
        return self.send_many(SUBSCRIPTION_SEND, [message], group=ratelimit.group_for(SUBSCRIPTION_SEND), threads=1)[0]

    # --- mass sends (one call each; a clientmsgid makes a repeat harmless) -------------------------------------------
    def mass_send_to_tag(self, content: Payload, *, tag_id: int, clientmsgid: str = "") -> MassSent:
        """`content` from messages.mass_text / mass_image / mass_mpnews ... to the followers with a WeChat tag."""
        return self._mass(MASS_SEND_TO_FILTER, messages.mass_to_tag(content, tag_id=tag_id, clientmsgid=clientmsgid))

    def mass_send_to_all(self, content: Payload, *, clientmsgid: str = "") -> MassSent:
        return self._mass(MASS_SEND_TO_FILTER, messages.mass_to_all(content, clientmsgid=clientmsgid))

    def mass_send_to_openids(self, content: Payload, *, openids: Sequence[str], clientmsgid: str = "") -> MassSent:
        body = messages.mass_to_openids(content, openids=openids, clientmsgid=clientmsgid)
        return self._mass(MASS_SEND_TO_OPENIDS, body)

    def mass_preview(self, content: Payload, *, openid: str = "", wxname: str = "") -> MassSent:
        """The mass message as one follower will see it (by openid or WeChat ID); WeChat allows 100 a day."""
        return self._mass(MASS_PREVIEW, messages.mass_preview(content, openid=openid, wxname=wxname))

    def _mass(self, endpoint: str, body: Payload) -> MassSent:
        result: Any = self.post(endpoint, data=body)
        result = result if isinstance(result, dict) else {}
        return MassSent(msg_id=_int(result.get("msg_id")), msg_data_id=_int(result.get("msg_data_id")))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
