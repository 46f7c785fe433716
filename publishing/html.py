"""An article's Markdown as HTML that WeChat's editor accepts (pure functions, no I/O).

WeChat's editor keeps a known set of tags and inline `style` attributes only (no <style>, no classes, no scripts,
frames, forms or media players), and shows images only from its own servers (body images uploaded to it). So:

1. the Markdown is rendered and every tag is checked: a tag WeChat refuses is an error naming it (the operator
   fixes the article; nothing is sent);
2. what remains is cleaned with bleach to WeChat's tags and attributes (operators' own styles are dropped), and
   each tag gets our inline style;
3. images must be ours (under MEDIA_URL, relative or on PUBLIC_BASE_URL): `local_images()` lists them, and
   `images_replace()` swaps each for the URL WeChat gave it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import bleach
import markdown
from django.utils.translation import gettext as _

from .errors import ArticleInvalid

WECHAT_TAGS = frozenset(
    {
        "a", "b", "blockquote", "br", "code", "del", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "i", "img", "li", "ol", "p", "pre", "s", "section", "span", "strong", "sub", "sup", "table", "tbody",
        "td", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
REFUSED_TAGS = frozenset(
    {
        "applet", "audio", "button", "canvas", "embed", "form", "frame", "frameset", "iframe", "input", "link", "meta",
        "object", "script", "select", "style", "svg", "textarea", "video",
    }
)  # fmt: skip
ATTRIBUTES = {"a": ["href"], "img": ["src", "alt"], "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan"]}
STYLES = {
    "p": "margin: 0 0 1em; line-height: 1.75; font-size: 16px; color: #333;",
    "h1": "margin: 1.2em 0 0.6em; font-size: 22px; font-weight: bold;",
    "h2": "margin: 1.2em 0 0.6em; font-size: 20px; font-weight: bold;",
    "h3": "margin: 1em 0 0.5em; font-size: 18px; font-weight: bold;",
    "blockquote": "margin: 1em 0; padding: 0.5em 1em; border-left: 3px solid #07c160; color: #666;",
    "img": "display: block; max-width: 100%; height: auto; margin: 0 auto;",
    "pre": "padding: 0.8em; background: #f6f8fa; overflow-x: auto; font-size: 14px;",
    "code": "font-family: Menlo, Consolas, monospace; font-size: 14px;",
    "ul": "padding-left: 1.5em; margin: 0 0 1em;",
    "ol": "padding-left: 1.5em; margin: 0 0 1em;",
    "li": "line-height: 1.75; font-size: 16px;",
    "table": "border-collapse: collapse; width: 100%;",
    "td": "border: 1px solid #ddd; padding: 4px 8px;",
    "th": "border: 1px solid #ddd; padding: 4px 8px; background: #f6f8fa;",
}
MAX_CHARACTERS = 20_000  # WeChat: under 20,000 characters and 1 MB
MAX_BYTES = 1024 * 1024
_TAG = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9-]*)")
_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]*)(")')


def render(body: str) -> str:
    return markdown.markdown(body or "", extensions=["extra", "sane_lists"], output_format="html")


def refused_tags(html: str) -> list[str]:
    return sorted({t.lower() for t in _TAG.findall(html)} & REFUSED_TAGS)


def is_local(src: str, *, media_url: str, public_base_url: str) -> bool:
    """An image of ours: under MEDIA_URL, given as a path or on PUBLIC_BASE_URL's host."""
    media_path = "/" + media_url.strip("/") + "/"
    parts = urlsplit(src)
    if not parts.scheme and not parts.netloc:
        return parts.path.startswith(media_path)
    return parts.netloc == urlsplit(public_base_url).netloc and parts.path.startswith(media_path)


def convert(body: str, *, media_url: str, public_base_url: str) -> tuple[str, list[str]]:
    """WeChat's HTML of a Markdown body, and the local image sources in it (in order, once each).

    Raises ArticleInvalid for tags WeChat refuses, images that are not ours, or a body over WeChat's size."""
    raw = render(body)
    refused = refused_tags(raw)
    if refused:
        raise ArticleInvalid(
            _("WeChat's editor refuses these tags in the body: %(tags)s. Remove them and save again.")
            % {"tags": ", ".join(f"<{t}>" for t in refused)},
            extra={"tags": refused},
        )
    clean = bleach.clean(
        raw, tags=WECHAT_TAGS, attributes=ATTRIBUTES, protocols={"http", "https"}, strip=True, strip_comments=True
    )
    images: list[str] = []
    for _prefix, src, _suffix in _IMG_SRC.findall(clean):
        src = src.replace("&amp;", "&")
        if not is_local(src, media_url=media_url, public_base_url=public_base_url):
            raise ArticleInvalid(
                _("WeChat shows only images uploaded to it: %(src)s is not in our media library.") % {"src": src},
                extra={"image": src},
            )
        if src not in images:
            images.append(src)
    html = style(clean)
    if len(html) > MAX_CHARACTERS or len(html.encode()) > MAX_BYTES:
        raise ArticleInvalid(
            _("The body is too long for WeChat (%(count)s characters; at most 20,000 and 1 MB).") % {"count": len(html)}
        )
    return html, images


def style(html: str) -> str:
    """Each tag's inline style (WeChat's editor drops stylesheets and classes)."""

    def add(match: re.Match) -> str:
        tag = match.group(1).lower()
        css = STYLES.get(tag)
        return f'<{match.group(1)} style="{css}"' if css else match.group(0)

    return re.sub(r"<([a-zA-Z][a-zA-Z0-9]*)(?=[\s>/])", add, html)


def images_replace(html: str, urls: Mapping[str, str]) -> str:
    """Swap each local image source for WeChat's URL of it."""

    def swap(match: re.Match) -> str:
        src = match.group(2).replace("&amp;", "&")
        return match.group(1) + urls.get(src, src).replace("&", "&amp;") + match.group(3)

    return _IMG_SRC.sub(swap, html)
