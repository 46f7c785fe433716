"""Subscription notices (订阅通知): the account's notice templates, WeChat's public library of them, and sending.

A notice template's `content` lists its keywords as "名称:{{thing1.DATA}}" lines; `NoticeTemplate.keywords` gives
them as (key, name) pairs, and the key names WeChat's value rule (see notice_rules).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import messages
from ..messages import Payload

if TYPE_CHECKING:
    from .core import SendResult

NOTICE_SEND = "cgi-bin/message/subscribe/bizsend"
TEMPLATES = "wxaapi/newtmpl/gettemplate"
TEMPLATE_ADD = "wxaapi/newtmpl/addtemplate"
TEMPLATE_DELETE = "wxaapi/newtmpl/deltemplate"
CATEGORIES = "wxaapi/newtmpl/getcategory"
LIBRARY_TITLES = "wxaapi/newtmpl/getpubtemplatetitles"
LIBRARY_KEYWORDS = "wxaapi/newtmpl/getpubtemplatekeywords"

_KEYWORD = re.compile(r"(?:^|\n)\s*([^:\n：{}]*?)\s*[:：]?\s*\{\{\s*([A-Za-z_]+\d+)\.DATA\s*\}\}")


@dataclass(frozen=True, slots=True)
class NoticeTemplate:
    """One of the account's notice templates: its id (priTmplId), title, the content listing its keywords, an example,
    and its type (2: one-time, each acceptance allows one notice; 3: long-term)."""

    template_id: str
    title: str
    content: str = ""
    example: str = ""
    type: int = 2
    keywords: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LibraryTitle:
    tid: str
    title: str
    type: int = 2
    category_id: str = ""


@dataclass(frozen=True, slots=True)
class LibraryKeyword:
    kid: int
    name: str
    example: str = ""
    rule: str = ""


@dataclass(frozen=True, slots=True)
class LibraryPage:
    count: int
    titles: list[LibraryTitle]


def keywords_of(content: str) -> list[tuple[str, str]]:
    """The (key, name) pairs of a template's content, in order: "物品名称:{{thing1.DATA}}" -> ("thing1", "物品名称")."""
    return [(key, name.strip()) for name, key in _KEYWORD.findall(content or "")]


def _data(result: Any) -> list[dict[str, Any]]:
    data = result.get("data") if isinstance(result, dict) else None
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


class NoticesMixin:
    # --- sending ------------------------------------------------------------------------------------------------
    def send_notice_many(self, messages: Sequence[Payload], *, threads: int | None = None, before_send=None,
                         after_send=None) -> list[SendResult]:  # fmt: skip
        """Subscription notices built by `messages.subscription_notice`, over the kept-alive pool; one result each.
        43101 (not accepted) classifies as Outcome.NOT_CONSENTED."""
        return self.send_many(
            NOTICE_SEND, messages, group="notice", threads=threads, before_send=before_send, after_send=after_send
        )

    # --- the account's templates ------------------------------------------------------------------------------
    def notice_templates(self) -> list[NoticeTemplate]:
        result = self._request("get", self.base_url + TEMPLATES)
        return [
            NoticeTemplate(
                template_id=str(item.get("priTmplId") or ""),
                title=str(item.get("title") or ""),
                content=str(item.get("content") or ""),
                example=str(item.get("example") or ""),
                type=int(item.get("type") or 2),
                keywords=keywords_of(str(item.get("content") or "")),
            )
            for item in _data(result)
            if item.get("priTmplId")
        ]

    def notice_template_add(self, *, tid: str, kid_list: Sequence[int], scene_desc: str) -> str:
        """Add a library template to the account; returns its template id (priTmplId)."""
        body = messages.notice_template_add(tid=tid, kid_list=kid_list, scene_desc=scene_desc)
        result = self._request("post", self.base_url + TEMPLATE_ADD, data=body)
        return str(result.get("priTmplId") or "") if isinstance(result, dict) else ""

    def notice_template_delete(self, *, template_id: str) -> None:
        self._request("post", self.base_url + TEMPLATE_DELETE, data=messages.notice_template_delete(
            template_id=template_id))  # fmt: skip

    # --- WeChat's public library --------------------------------------------------------------------------------
    def notice_categories(self) -> list[tuple[int, str]]:
        """The account's categories (id, name): the library offers the titles of these."""
        return [(int(item.get("id") or 0), str(item.get("name") or "")) for item in
                _data(self._request("get", self.base_url + CATEGORIES))]  # fmt: skip

    def notice_library_titles(self, *, category_ids: Sequence[int], start: int = 0, limit: int = 30) -> LibraryPage:
        params = messages.notice_library_titles_query(category_ids=category_ids, start=start, limit=limit)
        result = self._request("get", self.base_url + LIBRARY_TITLES, params=params)
        titles = [
            LibraryTitle(tid=str(item.get("tid") or ""), title=str(item.get("title") or ""),
                         type=int(item.get("type") or 2), category_id=str(item.get("categoryId") or ""))
            for item in _data(result)
        ]  # fmt: skip
        count = int(result.get("count") or len(titles)) if isinstance(result, dict) else len(titles)
        return LibraryPage(count=count, titles=titles)

    def notice_library_keywords(self, *, tid: str) -> list[LibraryKeyword]:
        result = self._request("get", self.base_url + LIBRARY_KEYWORDS, params={"tid": str(tid)})
        return [
            LibraryKeyword(kid=int(item.get("kid") or 0), name=str(item.get("name") or ""),
                           example=str(item.get("example") or ""), rule=str(item.get("rule") or ""))
            for item in _data(result)
        ]  # fmt: skip
