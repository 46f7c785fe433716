"""API errors are JSON in every mode: under DEBUG too, /api/ never answers with Django's HTML debug pages."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _

MESSAGES = {
    400: _("Bad request."),
    403: _("You do not have permission to do this."),
    404: _("Not found."),
    405: _("Method not allowed."),
    413: _("The request is too large."),
    500: _("Server error."),
}


class ApiJsonErrorsMiddleware:
    """An error response under /api/ that is not JSON (Django's 404 and 500 pages, DEBUG's technical pages, a 400
    from a suspicious request) becomes `{"message": ..., "extra": {}}` with the same status. DRF's own errors are
    JSON already (wechat_crm.exceptions) and pass unchanged. Placed outside every middleware that may fail, so that
    it sees the response Django made of any exception."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not request.path_info.startswith("/api/"):
            return response
        if response.get("Content-Type", "").startswith(("application/json", "application/problem+json")):
            return response
        status = response.status_code
        message = MESSAGES.get(status) or MESSAGES.get(status // 100 * 100) or HTTPStatus(status).phrase
        json_response = JsonResponse({"message": str(message), "extra": {}}, status=status)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                json_response[header] = response[header]
        return json_response
