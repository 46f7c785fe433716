"""Public pages: articles at /c/<slug>/ and tracked-link redirects at /r/<token>."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_safe

from . import links, selectors, services
from .errors import LinkTokenExpired, LinkTokenInvalid

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
    """Record the click (GET only: link previews use HEAD) and redirect (302) to the URL the signed token names."""
    try:
        if request.method == "HEAD":
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
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _link_error(request: HttpRequest, *, status: int, expired: bool, url: str) -> HttpResponse:
    response = render(request, "content/link_error.html", {"expired": expired, "url": url}, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
