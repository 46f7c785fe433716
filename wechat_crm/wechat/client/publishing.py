"""Publishing on WeChat: permanent material, body images, drafts, mass sends of articles, previews, publishing (发布)
and datacube reports; and the readers of what WeChat reports back about them (PUBLISHJOBFINISH, the articles of a
MASSSENDJOBFINISH).

Reads (counts, lists, draft/get, freepublish/get, datacube) are safe to repeat; uploads, draft/add and publishing
are not (a timeout after sending raises WeChatOutcomeUnknown). A 48001 answer raises WeChatUnauthorized naming the
call, so the operator reads which permission the account lacks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import messages
from ..errors import WeChatError, WeChatUnauthorized
from ..messages import DraftArticle

if TYPE_CHECKING:
    from .messaging import MassSent

MATERIAL_PAGE = 20
MASS_MIN_OPENIDS = 2


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


def _items(node: Any, key: str = "item") -> list[dict[str, Any]]:
    """The repeated `<item>`s of a parsed XML node (one parses as a dict, several as a list) or a JSON list."""
    items = node.get(key, []) if isinstance(node, dict) else []
    return [i for i in (items if isinstance(items, list) else [items]) if isinstance(i, dict)]


def publish_state(data: dict[str, Any]) -> PublishState:
    """Read freepublish/get's answer, or PUBLISHJOBFINISH's PublishEventInfo (parsed XML: every value a string)."""
    urls = {}
    for item in _items(data.get("article_detail")):
        if str(item.get("idx", "")).isdigit() and item.get("article_url"):
            urls[int(item["idx"])] = str(item["article_url"])
    fail = data.get("fail_idx") or []
    try:
        status = int(data.get("publish_status", 3))
    except (TypeError, ValueError):
        status = 3
    return PublishState(
        publish_id=str(data.get("publish_id", "")),
        status=status,
        article_id=str(data.get("article_id") or ""),
        urls=urls,
        fail_idx=tuple(int(i) for i in (fail if isinstance(fail, list) else [fail]) if str(i).isdigit()),
    )


def mass_job_articles(fields: dict[str, Any]) -> tuple[dict[int, str], dict[str, Any]]:
    """MASSSENDJOBFINISH's article URLs {idx: url} and its copyright check {"state": ..., "articles": [...]}."""
    url_result = fields.get("ArticleUrlResult") or {}
    urls = {
        int(i["ArticleIdx"]): str(i.get("ArticleUrl", ""))
        for i in _items(url_result.get("ResultList") if isinstance(url_result, dict) else None)
        if str(i.get("ArticleIdx", "")).isdigit()
    }
    check = fields.get("CopyrightCheckResult") or {}
    copyright_check: dict[str, Any] = {}
    if isinstance(check, dict) and check:
        copyright_check = {"state": str(check.get("CheckState", "")), "articles": _items(check.get("ResultList"))}
    return urls, copyright_check


class PublishingMixin:
    def _publishing(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        try:
            result = self._request(method, endpoint, **kwargs)  # type: ignore[attr-defined]
        except WeChatUnauthorized as exc:
            exc.api = endpoint
            raise
        return result if isinstance(result, dict) else {}

    # --- material ---------------------------------------------------------------------------------------------------
    def material_add(self, *, kind: str, filename: str, content: bytes) -> tuple[str, str]:
        """Permanent material ("image" or "thumb"); returns (media_id, url) (WeChat gives no url for a thumb)."""
        result = self._publishing(
            "post", "material/add_material", params={"type": kind}, files={"media": (filename, content)}
        )
        return str(result["media_id"]), str(result.get("url") or "")

    def body_image_upload(self, *, filename: str, content: bytes) -> str:
        """An image for an article's body (media/uploadimg): the URL to put in the content."""
        return str(self._publishing("post", "media/uploadimg", files={"media": (filename, content)})["url"])

    def media_get(self, *, media_id: str) -> tuple[bytes, str]:
        """A temporary media a subscriber sent (an image, a voice message; WeChat keeps them 3 days): its bytes and
        content type. An unknown or expired media_id raises the typed error of its errcode (40007)."""
        result = self._request("get", "media/get", params={"media_id": media_id}, idempotent=True)  # type: ignore[attr-defined]
        if isinstance(result, dict):  # JSON without an errcode: not media
            raise WeChatError(-1, "media/get answered JSON instead of the media")
        return result.content, result.headers.get("Content-Type", "application/octet-stream")

    def material_count(self) -> dict[str, int]:
        return self._publishing("get", "material/get_materialcount", idempotent=True)

    def material_page(self, *, kind: str = "image", offset: int = 0, count: int = MATERIAL_PAGE) -> dict[str, Any]:
        """One page of permanent material: {"total_count", "item_count", "item": [{media_id, name, url, ...}]}."""
        body = {"type": kind, "offset": offset, "count": count}
        return self._publishing("post", "material/batchget_material", data=body, idempotent=True)

    def material_delete(self, *, media_id: str) -> None:
        self._publishing("post", "material/del_material", data={"media_id": media_id})

    # --- drafts -----------------------------------------------------------------------------------------------------
    def draft_add(self, *, articles: Sequence[DraftArticle]) -> str:
        return str(self._publishing("post", "draft/add", data=messages.draft_add(articles))["media_id"])

    def draft_update(self, *, media_id: str, index: int, article: DraftArticle) -> None:
        body = messages.draft_update(media_id=media_id, index=index, article=article)
        self._publishing("post", "draft/update", data=body, idempotent=True)

    def draft_get(self, *, media_id: str) -> list[dict[str, Any]]:
        return self._publishing("post", "draft/get", data={"media_id": media_id}, idempotent=True)["news_item"]

    def draft_delete(self, *, media_id: str) -> None:
        self._publishing("post", "draft/delete", data={"media_id": media_id})

    # --- publishing -------------------------------------------------------------------------------------------------
    def publish_submit(self, *, media_id: str) -> str:
        return str(self._publishing("post", "freepublish/submit", data={"media_id": media_id})["publish_id"])

    def publish_get(self, *, publish_id: str) -> PublishState:
        data = self._publishing("post", "freepublish/get", data={"publish_id": publish_id}, idempotent=True)
        return publish_state(data)

    # --- articles sent to followers ---------------------------------------------------------------------------------
    def mass_news_send(
        self,
        *,
        media_id: str,
        clientmsgid: str,
        tag_id: int | None = None,
        openids: Sequence[str] | None = None,
        send_ignore_reprint: bool = False,
    ) -> MassSent:
        """A draft's articles to everyone, to a tag (sendall) or to 2..10,000 openids (mass/send)."""
        content = messages.mass_mpnews(media_id, send_ignore_reprint=send_ignore_reprint)
        try:
            if openids is not None:
                if len(openids) < MASS_MIN_OPENIDS:
                    raise ValueError("a mass send to openids takes at least 2 openids")
                return self.mass_send_to_openids(content, openids=openids, clientmsgid=clientmsgid)  # type: ignore[attr-defined]
            if tag_id is not None:
                return self.mass_send_to_tag(content, tag_id=tag_id, clientmsgid=clientmsgid)  # type: ignore[attr-defined]
            return self.mass_send_to_all(content, clientmsgid=clientmsgid)  # type: ignore[attr-defined]
        except WeChatUnauthorized as exc:
            exc.api = "message/mass/send" if openids is not None else "message/mass/sendall"
            raise

    def mass_news_preview(self, *, media_id: str, openid: str = "", wxname: str = "") -> MassSent:
        """The draft's articles to one person, by openid or WeChat ID (no 48-hour window; 100 a day)."""
        return self.mass_preview(messages.mass_mpnews(media_id), openid=openid, wxname=wxname)  # type: ignore[attr-defined]

    # --- datacube ---------------------------------------------------------------------------------------------------
    def datacube_report(self, report: str, *, begin: dt.date, end: dt.date) -> list[dict[str, Any]]:
        """One datacube report's rows over [begin, end] (within the report's longest range)."""
        result = self._publishing(
            "post",
            report,
            data=messages.datacube_range(report, begin=begin, end=end),
            api_base_url=self.base_url + "datacube/",  # type: ignore[attr-defined]
            idempotent=True,
        )
        return list(result.get("list") or [])
