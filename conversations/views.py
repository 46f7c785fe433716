"""The preferences page (/preferences/): opened from the custom menu (a VIEW button) in WeChat's browser, through web
authorisation, never with an openid in its URL.

    GET /preferences/        the person known to this browser's session: the form; in WeChat's browser otherwise:
                             302 to WeChat's authorise page; elsewhere: a page saying to open it from the menu
    GET /preferences/auth/   back from WeChat (code, state): the person remembered in the session
                             (PREFERENCES_SESSION_SECONDS), 302 to /preferences/; a bad or replayed state: 400
    POST /preferences/       the form (CSRF-protected): saved, confirmed in the chat through the send policy, 302 back
"""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from accounts import webauth
from content.reasons import reason_label

from . import policy, preferences

logger = logging.getLogger(__name__)

SESSION_KEY = "preferences_subscriber_id"


class PreferencesForm(forms.Form):
    topics = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Topics I receive"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    max_pushes_per_week = forms.TypedChoiceField(
        label=gettext_lazy("How often"), coerce=int, empty_value=None, required=False
    )
    pushes_paused = forms.BooleanField(label=gettext_lazy("Pause all pushes"), required=False)
    notices_withdrawn = forms.MultipleChoiceField(
        label=gettext_lazy("Withdraw my consent to these notices"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, prefs: preferences.Preferences, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["topics"].choices = [(topic.pk, topic.name) for topic, _received in prefs.topics]
        caps = sorted({n for n in preferences.FREQUENCIES if n is not None} | {prefs.max_pushes_per_week} - {None})
        # The person's current cap is always offered (one set in the chat, "每周 4", may be none of the usual ones).
        self.fields["max_pushes_per_week"].choices = [
            ("", _("The account's usual rhythm")),
            *[(n, _("At most %(n)d a week") % {"n": n} if n else _("None for now")) for n in caps],
        ]
        self.fields["notices_withdrawn"].choices = [(n.template_id, n.title) for n in prefs.notices]
        if not prefs.notices:
            del self.fields["notices_withdrawn"]
        self.initial = {
            "topics": [topic.pk for topic, received in prefs.topics if received],
            "max_pushes_per_week": prefs.max_pushes_per_week if prefs.max_pushes_per_week is not None else "",
            "pushes_paused": prefs.pushes_paused,
        }


def _page(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    response = render(request, f"conversations/preferences/{template}", context, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def _person(request: HttpRequest) -> int | None:
    value = request.session.get(SESSION_KEY)
    return value if isinstance(value, int) else None


@require_http_methods(["GET", "HEAD", "POST"])
def preferences_page(request: HttpRequest) -> HttpResponse:
    from content.services.link_auth import in_wechat
    from wechat_crm.wechat.client import web_auth_url

    subscriber_id = _person(request)
    if subscriber_id is None or not preferences.subscriber_follows(subscriber_id=subscriber_id):
        if request.method == "GET" and in_wechat(request.META.get("HTTP_USER_AGENT", "")):
            state = webauth.state_make(purpose=webauth.PURPOSE_PREFERENCES)
            redirect_uri = settings.PUBLIC_BASE_URL.rstrip("/") + reverse("preferences:auth")
            response = HttpResponseRedirect(web_auth_url(redirect_uri=redirect_uri, state=state))
            response["Cache-Control"] = "no-store"
            return response
        return _page(request, "open_in_wechat.html", {}, status=403 if request.method == "POST" else 200)
    prefs = preferences.preferences_for(subscriber_id=subscriber_id)
    if request.method != "POST":
        return _page(request, "page.html", {"form": PreferencesForm(prefs=prefs), "prefs": prefs})
    form = PreferencesForm(request.POST, prefs=prefs)
    if not form.is_valid():
        return _page(request, "page.html", {"form": form, "prefs": prefs}, status=400)
    data = form.cleaned_data
    changed = preferences.preferences_change(
        subscriber_id=subscriber_id,
        topics_received=data["topics"],
        max_pushes_per_week=data["max_pushes_per_week"],
        pushes_paused=data["pushes_paused"],
        notices_withdrawn=data.get("notices_withdrawn") or (),
    )
    if not changed.lines:
        messages.info(request, _("Nothing changed."))
    elif changed.confirmed_in_chat:
        messages.success(request, _("Saved. We have sent you a confirmation in the chat."))
    else:
        code = changed.decision.reason if changed.decision else ""
        if code in (policy.Reason.OUTSIDE_WINDOW, policy.Reason.WINDOW_LIMIT):
            reason = _("WeChat lets an account write to you only for a while after your last message to it")
        else:
            reason = reason_label(code)
        messages.success(request, _("Saved. We could not confirm it in the chat: %(reason)s.") % {"reason": reason})
    return HttpResponseRedirect(reverse("preferences:page"))


@require_GET  # not HEAD: a link preview must not use up the state
def preferences_auth(request: HttpRequest) -> HttpResponse:
    """Back from WeChat's authorise page: the person is remembered in this browser's session, then the page."""
    try:
        webauth.state_read(request.GET.get("state", ""), purpose=webauth.PURPOSE_PREFERENCES)
        # Someone we do not know is not recorded: the page only asks them to follow first.
        person = webauth.person_from_code(code=request.GET.get("code", ""), create=False)
    except webauth.WebAuthRefused as exc:
        logger.info("preferences page: the return from WeChat's authorise page was refused")
        return _page(request, "refused.html", {"message": exc.message}, status=400)
    if person.subscriber_id is None or not person.following:
        return _page(request, "follow_first.html", {})
    request.session.cycle_key()  # a new session id for the identified person (no fixation)
    request.session[SESSION_KEY] = person.subscriber_id
    request.session.set_expiry(settings.PREFERENCES_SESSION_SECONDS)
    response = HttpResponseRedirect(reverse("preferences:page"))
    response["Cache-Control"] = "no-store"
    return response
