"""Domain errors of the content app. Each is an ApplicationError: a JSON 4xx in the API, a message in the admin."""

from __future__ import annotations

from django.utils.translation import gettext as _

from wechat_crm.exceptions import ApplicationError


class ArticleStatusError(ApplicationError):
    """An illegal status change (publishing a published article, publishing without a body...)."""


class TemplateInvalid(ApplicationError):
    """A message template's fields do not compile, use unknown variables or tags, or do not render.

    `extra["fields"]` maps a field's key (or its position, "#1") to its messages.
    """

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        lines = [f"{key}: {msg}" for key, msgs in errors.items() for msg in msgs]
        super().__init__(
            _("The template's fields are invalid: %(errors)s") % {"errors": "; ".join(lines)}, extra={"fields": errors}
        )

    def messages(self) -> list[str]:
        return [f"{key}: {msg}" if key else msg for key, msgs in self.errors.items() for msg in msgs]


class LinkTokenInvalid(ApplicationError):
    """A tracked-link token whose signature does not match (tampered with, truncated, or from another server)."""


class LinkTokenExpired(ApplicationError):
    """A tracked-link token that is authentic but older than TRACKED_LINK_MAX_AGE_DAYS."""

    status_code = 410

    def __init__(self, message: str, *, url: str = ""):
        super().__init__(message)
        self.url = url


class SegmentInvalid(ApplicationError):
    """A segment's rules are not valid: `extra["path"]` says where ("rules[1].tags")."""


class PushStatusError(ApplicationError):
    """An illegal status change of a push (sending a draft, cancelling a sent push...)."""

    status_code = 409


class PushInvalid(ApplicationError):
    """A push that cannot be scheduled or tested as it is (no segment, no content, no linked openid...)."""


class NoticeInvalid(ApplicationError):
    """A subscription notice (its values, or a template to add from WeChat's library) breaks WeChat's rules.

    `extra["fields"]` names each field ("notice_values.thing1", "kid_list") with its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        lines = [f"{key}: {msg}" for key, msgs in errors.items() for msg in msgs]
        super().__init__(
            _("The subscription notice is invalid: %(errors)s") % {"errors": "; ".join(lines)},
            extra={"fields": errors},
        )
