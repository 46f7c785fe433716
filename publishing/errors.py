"""Domain errors of publishing. Each is an ApplicationError: a JSON 4xx in the API, a message in the admin."""

from __future__ import annotations

from wechat_crm.exceptions import ApplicationError


class MediaInvalid(ApplicationError):
    """An image WeChat would refuse: wrong format or too big for its kind (checked before any call)."""


class ArticleInvalid(ApplicationError):
    """An article WeChat's editor would refuse: tags it does not accept, images from elsewhere, no cover, too long."""


class NewsRefused(ApplicationError):
    """A news push that WeChat's rules for the account type forbid (quota, openid lists, recipients per send)."""

    status_code = 409


class WeChatRefused(ApplicationError):
    """WeChat answered an error (its message names it: a missing permission, a used-up quota ...)."""

    status_code = 502
