"""Public pages: articles at /c/<slug>/ and tracked-link redirects at /r/<token>."""

from __future__ import annotations

import logging
from functools import lru_cache

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_safe

from accounts.webauth import WebAuthRefused

from . import links, selectors, services
from .errors import LinkTokenExpired, LinkTokenInvalid
from .services import link_auth

logger = logging.getLogger(__name__)


@require_safe
def article_detail(request: HttpRequest, slug: str) -> HttpResponse:
    article = selectors.article_for_page(slug=slug, user=request.user)
    if article is None:
        raise Http404
    preview = not article.is_published
    response = render(request, "content/article_detail.html", {"article": article, "preview": preview})
    if preview:
        response["Cache-Control"] = "private, no-store"
        response["X-Robots-Tag"] = "noindex"
    else:
        response["Cache-Control"] = "public, max-age=60"
    return response


@require_safe
def link_redirect(request: HttpRequest, token: str) -> HttpResponse:
    """Record the click (GET only: link previews use HEAD) and redirect (302) to the URL the signed token names.
    In WeChat's browser the click is recorded on the way back from WeChat's authorise page (link_auth_return), so
    that it is credited to whoever opened the link."""
    try:
        if (
            request.method == "GET"
            and settings.TRACKED_LINK_WEB_AUTH
            and link_auth.in_wechat(request.META.get("HTTP_USER_AGENT", ""))
        ):
            url = link_auth.link_authorise_url(token=token)
        elif request.method == "HEAD":
            url = links.url_for(services.link_target(token).link_id)
            if url is None or not url.lower().startswith(("http://", "https://")):
                raise LinkTokenInvalid("")
        else:
            url = services.link_click_record(token=token)
    except LinkTokenExpired as exc:
        # Authentic but old: the URL is one we signed, so we may offer it, but we neither record nor redirect.
        url = exc.url if exc.url.lower().startswith(("http://", "https://")) else ""
        return _link_error(request, status=410, expired=True, url=url)
    except LinkTokenInvalid:
        logger.info("tracked link with an invalid token refused")
        return _link_error(request, status=400, expired=False, url="")
    return _TrackedRedirect(url)


@lru_cache(maxsize=4096)
def _location(url: str) -> str:
    """The Location header of a redirect to `url`, checked and written by HttpResponseRedirect once per URL (a push
    sends thousands of people to the same few)."""
    return HttpResponseRedirect(url)["Location"]


class _TrackedRedirect(HttpResponseRedirect):
    """The redirect of a tracked link, with its headers given at once (the same response as HttpResponseRedirect
    plus two headers set one by one, in a quarter of the CPU: the redirect's hot path)."""

    def __init__(self, url: str) -> None:
        HttpResponse.__init__(
            self,
            status=302,
            headers={"Location": _location(url), "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )


@require_GET  # not HEAD: a link preview must not use up the state
def link_auth_return(request: HttpRequest) -> HttpResponse:
    """Back from WeChat's authorise page (`code`, `state`): the click credited to the person, then 302 to the link's
    target. A bad, expired or replayed state, or a code WeChat refuses: 400, and nobody is credited."""
    try:
        url = link_auth.link_auth_return(state=request.GET.get("state", ""), code=request.GET.get("code", ""))
    except WebAuthRefused as exc:
        logger.info("tracked link: the return from WeChat's authorise page was refused")
        return _link_error(request, status=400, expired=False, url="", message=exc.message)
    except (LinkTokenInvalid, LinkTokenExpired):
        return _link_error(request, status=400, expired=False, url="")
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _link_error(request: HttpRequest, *, status: int, expired: bool, url: str, message: str = "") -> HttpResponse:
    context = {"expired": expired, "url": url, "message": message}
    response = render(request, "content/link_error.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
