"""Domain errors of the conversations app (shown as they are in the admin and the API)."""

from wechat_crm.exceptions import ApplicationError


class MenuInvalid(ApplicationError):
    pass


class MenuPublishFailed(ApplicationError):
    pass


class OutsideWindow(ApplicationError):
    """WeChat does not allow a customer-service message now; send a template message instead."""


class SendRefused(ApplicationError):
    """The send policy refuses the message (extra: {"reason": code}): e.g. a marketing template from the inbox."""
