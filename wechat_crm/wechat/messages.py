"""Every JSON payload we send to WeChat, built from plain values.

Pure functions: no I/O, no settings, no models. Apps hand the client domain values (an openid, a text, the articles
of a card, a template's rendered fields, a tag id); the client's methods (client/) call these builders, and apps
that keep a message to send later (conversations' outbound messages) store what a builder returned.

Shapes follow WeChat's documentation of each call:
  * customer-service messages (`custom_*`): {"touser", "msgtype", <msgtype>: {...}};
  * template messages (`template_message`): {"touser", "template_id", "url"?, "miniprogram"?, "data"};
  * subscription notices (`subscription_notice`): {"touser", "template_id", "page"?, "miniprogram"?, "data"};
    the account's notice templates: adding one from WeChat's public library (`notice_template_add`: {"tid",
    "kidList", "sceneDesc"}), deleting one (`notice_template_delete`: {"priTmplId"}), the library's query
    parameters (`notice_library_titles_query`: {"ids", "start", "limit"});
  * mass sends: a content (`mass_text`, `mass_image`, `mass_mpnews`, ...) addressed to a tag or everyone
    (`mass_to_tag`, `mass_to_all`), to a list of openids (`mass_to_openids`) or previewed (`mass_preview`);
  * drafts (`draft_add`, `draft_update` of `DraftArticle`s) and datacube report ranges (`datacube_range`);
  * QR codes (`qrcode_temporary`, `qrcode_permanent`), the custom menu (`menu`), tag members (`tag_members`) and
    profile batches (`users_batch`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Payload = dict[str, Any]

NEWS_MAX_ARTICLES = 1  # WeChat shows one article per customer-service news message (it used to accept 8)
MASS_MAX_OPENIDS = 10_000  # one mass send to a list of openids
TAG_MEMBERS_MAX = 50  # one batch (un)tagging call
USERS_BATCH_MAX = 100  # one batch profile call


@dataclass(frozen=True, slots=True)
class NewsArticle:
    """One card of a news message: a title, a short description, where a tap leads, and a cover picture."""

    title: str
    description: str = ""
    url: str = ""
    picurl: str = ""


@dataclass(frozen=True, slots=True)
class MiniProgram:
    """A mini program page that a template message or a subscription notice opens."""

    appid: str
    pagepath: str = ""


TemplateData = Mapping[str, Mapping[str, str] | str]


# --- customer-service messages (inside the 48-hour window) ----------------------------------------------------------


def custom_text(*, openid: str, text: str) -> Payload:
    return {"touser": openid, "msgtype": "text", "text": {"content": text}}


def custom_image(*, openid: str, media_id: str) -> Payload:
    return {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}


def custom_news(*, openid: str, articles: Sequence[NewsArticle]) -> Payload:
    """A card linking to a page (the first article only: WeChat shows one). A card without a picture has no
    "picurl"."""
    items = [_news_item(a) for a in articles[:NEWS_MAX_ARTICLES]]
    return {"touser": openid, "msgtype": "news", "news": {"articles": items}}


def custom_mpnews(*, openid: str, media_id: str) -> Payload:
    """A card of an article stored on WeChat (a material or draft's media_id)."""
    return {"touser": openid, "msgtype": "mpnews", "mpnews": {"media_id": media_id}}


def custom_mpnewsarticle(*, openid: str, article_id: str) -> Payload:
    """A card of a published article (the article_id WeChat gave when it was published)."""
    return {"touser": openid, "msgtype": "mpnewsarticle", "mpnewsarticle": {"article_id": article_id}}


def _news_item(article: NewsArticle) -> dict[str, str]:
    item = {"title": article.title, "description": article.description, "url": article.url}
    if article.picurl:
        item["picurl"] = article.picurl
    return item


# --- template messages and subscription notices -------------------------------------------------------------------


def template_data(fields: TemplateData) -> dict[str, dict[str, str]]:
    """A template's fields as WeChat takes them: {key: {"value": ..., "color"?: ...}} (a plain string is a value)."""
    return {key: {"value": value} if isinstance(value, str) else dict(value) for key, value in fields.items()}


def template_message(
    *,
    openid: str,
    template_id: str,
    data: TemplateData,
    url: str = "",
    miniprogram: MiniProgram | None = None,
    client_msg_id: str = "",
) -> Payload:
    """A template message. "url" only when it links somewhere, "miniprogram" only with an appid, "client_msg_id"
    (WeChat's guard against a repeated send) only when given."""
    message: Payload = {"touser": openid, "template_id": template_id, "data": template_data(data)}
    if url:
        message["url"] = url
    if miniprogram is not None and miniprogram.appid:
        message["miniprogram"] = {"appid": miniprogram.appid, "pagepath": miniprogram.pagepath}
    if client_msg_id:
        message["client_msg_id"] = client_msg_id
    return message


def subscription_notice(
    *, openid: str, template_id: str, data: Mapping[str, str], page: str = "", miniprogram: MiniProgram | None = None
) -> Payload:
    """A subscription notice (订阅通知) to a subscriber who accepted the template: each field is {"value": ...}."""
    message: Payload = {"touser": openid, "template_id": template_id, "data": template_data(data)}
    if page:
        message["page"] = page
    if miniprogram is not None and miniprogram.appid:
        message["miniprogram"] = {"appid": miniprogram.appid, "pagepath": miniprogram.pagepath}
    return message


NOTICE_SCENE_DESC_MAX = 15  # characters of the service scene given when a library template is added
NOTICE_KEYWORDS_MIN, NOTICE_KEYWORDS_MAX = 2, 5  # keywords chosen from a library title
NOTICE_LIBRARY_PAGE_MAX = 30  # titles per page of the public library


def notice_template_add(*, tid: str, kid_list: Sequence[int], scene_desc: str) -> Payload:
    """Add a template of WeChat's public library to the account: its title id, the chosen keywords in order (2 to 5
    of the title's kids), and the service scene (at most 15 characters)."""
    return {"tid": str(tid), "kidList": [int(k) for k in kid_list], "sceneDesc": scene_desc}


def notice_template_delete(*, template_id: str) -> Payload:
    return {"priTmplId": template_id}


def notice_library_titles_query(*, category_ids: Sequence[int], start: int = 0, limit: int = 30) -> dict[str, str]:
    """The query of a page of the public library's titles in the account's categories."""
    limit = max(1, min(NOTICE_LIBRARY_PAGE_MAX, limit))
    return {"ids": ",".join(str(i) for i in category_ids), "start": str(max(0, start)), "limit": str(limit)}


# --- mass sends -----------------------------------------------------------------------------------------------------


def mass_text(text: str) -> Payload:
    return {"msgtype": "text", "text": {"content": text}}


def mass_image(media_id: str) -> Payload:
    return {"msgtype": "image", "image": {"media_id": media_id}}


def mass_voice(media_id: str) -> Payload:
    return {"msgtype": "voice", "voice": {"media_id": media_id}}


def mass_mpnews(media_id: str, *, send_ignore_reprint: bool = False) -> Payload:
    """Articles stored on WeChat (a draft's media_id). With send_ignore_reprint, WeChat sends an article it judges
    a reprint anyway (as the original's reprint); without, it stops the send."""
    return {"msgtype": "mpnews", "mpnews": {"media_id": media_id}, "send_ignore_reprint": int(send_ignore_reprint)}


def mass_to_tag(content: Payload, *, tag_id: int, clientmsgid: str = "") -> Payload:
    """To the followers with a WeChat tag. A clientmsgid makes a repeated request harmless (WeChat answers 45065)."""
    return _with_clientmsgid({"filter": {"is_to_all": False, "tag_id": tag_id}, **content}, clientmsgid)


def mass_to_all(content: Payload, *, clientmsgid: str = "") -> Payload:
    return _with_clientmsgid({"filter": {"is_to_all": True}, **content}, clientmsgid)


def mass_to_openids(content: Payload, *, openids: Sequence[str], clientmsgid: str = "") -> Payload:
    """To a list of followers: WeChat takes 2 to MASS_MAX_OPENIDS (10,000) openids and refuses other lists with
    its own error, which the caller handles like any refusal; only an empty list is a mistake of ours."""
    if not openids:
        raise ValueError("a mass send needs at least one openid")
    return _with_clientmsgid({"touser": list(openids), **content}, clientmsgid)


def mass_preview(content: Payload, *, openid: str = "", wxname: str = "") -> Payload:
    """A preview of a mass send to one follower, by openid or by WeChat ID (towxname)."""
    if bool(openid) == bool(wxname):
        raise ValueError("a preview goes to an openid or a WeChat ID")
    to = {"touser": openid} if openid else {"towxname": wxname}
    return {**to, **content}


def _with_clientmsgid(body: Payload, clientmsgid: str) -> Payload:
    if clientmsgid:
        body["clientmsgid"] = clientmsgid
    return body


# --- drafts (articles kept on WeChat) and datacube report ranges ----------------------------------------------------

DRAFT_MAX_ARTICLES = 8
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
    """One article of a draft, as WeChat's editor keeps it. `content` is HTML that WeChat accepts (converted);
    `thumb_media_id` is a permanent material's media_id (the cover)."""

    title: str
    content: str
    thumb_media_id: str
    author: str = ""
    digest: str = ""
    content_source_url: str = ""
    need_open_comment: bool = False
    only_fans_can_comment: bool = False


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
    """A draft of 1 to 8 articles (one multi-article message)."""
    if not 1 <= len(articles) <= DRAFT_MAX_ARTICLES:
        raise ValueError(f"a draft holds 1 to {DRAFT_MAX_ARTICLES} articles")
    return {"articles": [draft_article(a) for a in articles]}


def draft_update(*, media_id: str, index: int, article: DraftArticle) -> Payload:
    return {"media_id": media_id, "index": index, "articles": draft_article(article)}


def datacube_range(report: str, *, begin: dt.date, end: dt.date) -> Payload:
    """A datacube report's dates (Beijing time), within the longest range WeChat allows for it."""
    days = DATACUBE_REPORTS[report]
    if end < begin or (end - begin).days + 1 > days:
        raise ValueError(f"{report} covers 1 to {days} days")
    return {"begin_date": begin.isoformat(), "end_date": end.isoformat()}


# --- account set-up: QR codes, the menu, tags, profiles -------------------------------------------------------------


def qrcode_temporary(*, scene_str: str, expire_seconds: int) -> Payload:
    return {
        "expire_seconds": expire_seconds,
        "action_name": "QR_STR_SCENE",
        "action_info": {"scene": {"scene_str": scene_str}},
    }


def qrcode_permanent(*, scene_str: str) -> Payload:
    return {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene_str}}}


def menu(buttons: Sequence[Mapping[str, Any]]) -> Payload:
    """The custom menu: up to 3 buttons, each a click/view/miniprogram button or a "sub_button" list."""
    return {"button": [dict(b) for b in buttons]}


def tag_members(*, tag_id: int, openids: Sequence[str]) -> Payload:
    if len(openids) > TAG_MEMBERS_MAX:
        raise ValueError(f"one tagging call takes at most {TAG_MEMBERS_MAX} openids")
    return {"tagid": tag_id, "openid_list": list(openids)}


# WeChat refuses a remark of more than 30 bytes of UTF-8 (10 Chinese characters) with 40092.
REMARK_MAX_BYTES = 30


def user_remark(*, openid: str, remark: str) -> Payload:
    if len(remark.encode("utf-8")) > REMARK_MAX_BYTES:
        raise ValueError(f"WeChat takes a remark of at most {REMARK_MAX_BYTES} bytes")
    return {"openid": openid, "remark": remark}


def users_batch(openids: Sequence[str], *, lang: str = "zh_CN") -> Payload:
    if len(openids) > USERS_BATCH_MAX:
        raise ValueError(f"one profile batch takes at most {USERS_BATCH_MAX} openids")
    return {"user_list": [{"openid": openid, "lang": lang} for openid in openids]}
