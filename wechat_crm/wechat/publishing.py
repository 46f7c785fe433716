"""WeChat's publishing calls: permanent material, body images, drafts, mass sends of mpnews, previews, publishing
(发布) and datacube reports. Builders of their payloads (pure functions from plain values) and the client's methods
(`PublishingMixin`, part of `client.WeChatClient`): apps pass domain values and never see WeChat's JSON.

Reads (counts, lists, draft/get, freepublish/get, datacube) are safe to repeat; uploads, draft/add and publishing
are not (a timeout after sending raises WeChatOutcomeUnknown); a mass send carries a clientmsgid and is repeated
safely (WeChat answers 45065 to a repeat).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import WeChatUnauthorized

Payload = dict[str, Any]

DRAFT_MAX_ARTICLES = 8
MASS_MAX_OPENIDS = 10_000
MASS_MIN_OPENIDS = 2
MATERIAL_PAGE = 20
DATACUBE_REPORTS = {  # report -> longest range in days, as WeChat allows
    "getarticlesummary": 1,
    "getarticletotal": 1,
    "getuserread": 3,
    "getusershare": 7,
    "getusersummary": 7,
    "getusercumulate": 7,
}


@dataclass(frozen=True, slots=True)
class DraftArticle:
    """One article of a draft, as WeChat's editor keeps it. `content` is HTML that WeChat accepts (converted)."""

    title: str
    content: str
    thumb_media_id: str
    author: str = ""
    digest: str = ""
    content_source_url: str = ""
    need_open_comment: bool = False
    only_fans_can_comment: bool = False


# --- builders ------------------------------------------------------------------------------------------------------


def draft_article(article: DraftArticle) -> Payload:
    return {
        "title": article.title,
        "author": article.author,
        "digest": article.digest,
        "content": article.content,
        "content_source_url": article.content_source_url,
        "thumb_media_id": article.thumb_media_id,
        "need_open_comment": int(article.need_open_comment),
        "only_fans_can_comment": int(article.only_fans_can_comment),
    }


def draft_add(articles: Sequence[DraftArticle]) -> Payload:
    if not 1 <= len(articles) <= DRAFT_MAX_ARTICLES:
        raise ValueError(f"a draft holds 1 to {DRAFT_MAX_ARTICLES} articles")
    return {"articles": [draft_article(a) for a in articles]}


def draft_update(*, media_id: str, index: int, article: DraftArticle) -> Payload:
    return {"media_id": media_id, "index": index, "articles": draft_article(article)}


def mpnews(media_id: str, *, send_ignore_reprint: bool = False) -> Payload:
    return {"msgtype": "mpnews", "mpnews": {"media_id": media_id}, "send_ignore_reprint": int(send_ignore_reprint)}


def mpnews_to_all(media_id: str, *, clientmsgid: str, send_ignore_reprint: bool = False) -> Payload:
    body = {"filter": {"is_to_all": True}, **mpnews(media_id, send_ignore_reprint=send_ignore_reprint)}
    return {**body, "clientmsgid": clientmsgid}


def mpnews_to_tag(media_id: str, *, tag_id: int, clientmsgid: str, send_ignore_reprint: bool = False) -> Payload:
    content = mpnews(media_id, send_ignore_reprint=send_ignore_reprint)
    return {"filter": {"is_to_all": False, "tag_id": tag_id}, **content, "clientmsgid": clientmsgid}


def mpnews_to_openids(
    media_id: str, *, openids: Sequence[str], clientmsgid: str, send_ignore_reprint: bool = False
) -> Payload:
    if not MASS_MIN_OPENIDS <= len(openids) <= MASS_MAX_OPENIDS:
        raise ValueError(f"a mass send to openids takes {MASS_MIN_OPENIDS} to {MASS_MAX_OPENIDS} openids")
    body = {"touser": list(openids), **mpnews(media_id, send_ignore_reprint=send_ignore_reprint)}
    return {**body, "clientmsgid": clientmsgid}


def mpnews_preview(media_id: str, *, openid: str = "", wxname: str = "") -> Payload:
    if bool(openid) == bool(wxname):
        raise ValueError("a preview goes to an openid or a WeChat ID")
    target = {"touser": openid} if openid else {"towxname": wxname}
    return {**target, "msgtype": "mpnews", "mpnews": {"media_id": media_id}}


def datacube_range(report: str, *, begin: dt.date, end: dt.date) -> Payload:
    days = DATACUBE_REPORTS[report]
    if end < begin or (end - begin).days + 1 > days:
        raise ValueError(f"{report} covers 1 to {days} days")
    return {"begin_date": begin.isoformat(), "end_date": end.isoformat()}


# --- answers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MassAccepted:
    msg_id: int | None
    msg_data_id: int | None


@dataclass(frozen=True, slots=True)
class PublishState:
    """freepublish/get and PUBLISHJOBFINISH: status 0 published, 1 publishing, 2.. failed; URLs by article index."""

    publish_id: str
    status: int
    article_id: str
    urls: dict[int, str]
    fail_idx: tuple[int, ...] = ()

    @property
    def published(self) -> bool:
        return self.status == 0

    @property
    def pending(self) -> bool:
        return self.status == 1


def publish_state(data: dict[str, Any]) -> PublishState:
    """Read freepublish/get's answer or PUBLISHJOBFINISH's PublishEventInfo (parsed XML: strings, item or items)."""
    detail = data.get("article_detail") or {}
    items = detail.get("item") or [] if isinstance(detail, dict) else []
    if isinstance(items, dict):
        items = [items]
    urls = {int(i["idx"]): str(i["article_url"]) for i in items if isinstance(i, dict) and i.get("article_url")}
    fail = data.get("fail_idx") or []
    return PublishState(
        publish_id=str(data.get("publish_id", "")),
        status=int(data.get("publish_status", 3)),
        article_id=str(data.get("article_id") or ""),
        urls=urls,
        fail_idx=tuple(int(i) for i in (fail if isinstance(fail, list) else [fail])),
    )


def _items(node: Any) -> list[dict[str, Any]]:
    """The `<item>`s of a parsed `<ResultList>` (one item parses as a dict, several as a list)."""
    items = (node or {}).get("item", []) if isinstance(node, dict) else []
    return [i for i in (items if isinstance(items, list) else [items]) if isinstance(i, dict)]


def mass_job_articles(fields: dict[str, Any]) -> tuple[dict[int, str], dict[str, Any]]:
    """MASSSENDJOBFINISH's per-article URLs {idx: url} and its copyright check {"state", "articles": [...]}."""
    urls = {
        int(i["ArticleIdx"]): str(i.get("ArticleUrl", ""))
        for i in _items((fields.get("ArticleUrlResult") or {}).get("ResultList"))
        if str(i.get("ArticleIdx", "")).isdigit()
    }
    check = fields.get("CopyrightCheckResult") or {}
    copyright_check: dict[str, Any] = {}
    if isinstance(check, dict) and check:
        copyright_check = {"state": check.get("CheckState", ""), "articles": _items(check.get("ResultList"))}
    return urls, copyright_check


# --- the client's methods ----------------------------------------------------------------------------------------


class PublishingMixin:
    """Mixed into client.WeChatClient (which provides wechatpy's `_post`/`_get` over our transport)."""

    def _publishing_call(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        try:
            return self._request(method, endpoint, **kwargs)  # type: ignore[attr-defined]
        except WeChatUnauthorized as exc:
            exc.api = endpoint
            raise

    # material
    def material_add(self, *, kind: str, filename: str, content: bytes) -> tuple[str, str]:
        """Permanent material (kind "image" or "thumb"); returns (media_id, url) (thumb: no url)."""
        result = self._publishing_call(
            "post", "material/add_material", params={"type": kind}, files={"media": (filename, content)}
        )
        return str(result["media_id"]), str(result.get("url") or "")

    def body_image_upload(self, *, filename: str, content: bytes) -> str:
        """An image for an article's body (media/uploadimg): the URL to use in the content."""
        return str(self._publishing_call("post", "media/uploadimg", files={"media": (filename, content)})["url"])

    def material_count(self) -> dict[str, int]:
        return self._publishing_call("get", "material/get_materialcount", idempotent=True)

    def material_page(self, *, kind: str = "image", offset: int = 0, count: int = MATERIAL_PAGE) -> dict[str, Any]:
        body = {"type": kind, "offset": offset, "count": count}
        return self._publishing_call("post", "material/batchget_material", data=body, idempotent=True)

    def material_delete(self, *, media_id: str) -> None:
        self._publishing_call("post", "material/del_material", data={"media_id": media_id})

    # drafts
    def draft_add(self, *, articles: Sequence[DraftArticle]) -> str:
        return str(self._publishing_call("post", "draft/add", data=draft_add(articles))["media_id"])

    def draft_update(self, *, media_id: str, index: int, article: DraftArticle) -> None:
        body = draft_update(media_id=media_id, index=index, article=article)
        self._publishing_call("post", "draft/update", data=body, idempotent=True)

    def draft_get(self, *, media_id: str) -> list[dict[str, Any]]:
        return self._publishing_call("post", "draft/get", data={"media_id": media_id}, idempotent=True)["news_item"]

    def draft_delete(self, *, media_id: str) -> None:
        self._publishing_call("post", "draft/delete", data={"media_id": media_id})

    # publishing
    def publish_submit(self, *, media_id: str) -> str:
        return str(self._publishing_call("post", "freepublish/submit", data={"media_id": media_id})["publish_id"])

    def publish_get(self, *, publish_id: str) -> PublishState:
        data = self._publishing_call("post", "freepublish/get", data={"publish_id": publish_id}, idempotent=True)
        return publish_state(data)

    # mass sends and previews
    def mass_news_send(
        self,
        *,
        media_id: str,
        clientmsgid: str,
        tag_id: int | None = None,
        openids: Sequence[str] | None = None,
        send_ignore_reprint: bool = False,
    ) -> MassAccepted:
        """mpnews to everyone, to a tag (sendall) or to 2..10,000 openids (mass/send)."""
        options = {"clientmsgid": clientmsgid, "send_ignore_reprint": send_ignore_reprint}
        if openids is not None:
            endpoint, body = "message/mass/send", mpnews_to_openids(media_id, openids=openids, **options)
        elif tag_id is not None:
            endpoint, body = "message/mass/sendall", mpnews_to_tag(media_id, tag_id=tag_id, **options)
        else:
            endpoint, body = "message/mass/sendall", mpnews_to_all(media_id, **options)
        result = self._publishing_call("post", endpoint, data=body)
        msg_id, data_id = result.get("msg_id"), result.get("msg_data_id")
        return MassAccepted(int(msg_id) if msg_id else None, int(data_id) if data_id else None)

    def mass_news_preview(self, *, media_id: str, openid: str = "", wxname: str = "") -> int | None:
        body = mpnews_preview(media_id, openid=openid, wxname=wxname)
        return self._publishing_call("post", "message/mass/preview", data=body).get("msg_id")

    # datacube
    def datacube(self, report: str, *, begin: dt.date, end: dt.date) -> list[dict[str, Any]]:
        """One datacube report's rows over [begin, end] (within the report's longest range)."""
        result = self._publishing_call(
            "post",
            report,
            data=datacube_range(report, begin=begin, end=end),
            api_base_url=self.base_url + "datacube/",  # type: ignore[attr-defined]
            idempotent=True,
        )
        return list(result.get("list") or [])
