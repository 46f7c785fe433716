"""Strings of third-party apps without a Simplified Chinese catalogue, marked here so that `makemessages` puts them in
ours (LOCALE_PATHS wins over an app's own locale/). Never imported: makemessages only reads it (and skips locale/).

django-axes (login throttling): its admin pages and the lockout message operators see on the login page."""

from django.utils.translation import gettext_noop as _

AXES = [
    _("Access Attempt"),
    _("Access lock out"),
    _("Account locked: too many login attempts. Please try again later."),
    _("Account locked: too many login attempts. Contact an admin to unlock your account."),
    _("Attempt Remaining"),
    _("Attempt Time"),
    _("Clean up expired attempts"),
    _("Expires At"),
    _("Failed Logins"),
    _("Form Data"),
    _("GET Data"),
    _("HTTP Accept"),
    _("IP Address"),
    _("Locked Out"),
    _("Logout Time"),
    _("Meta Data"),
    _("Not set"),
    _("POST Data"),
    _("Path"),
    _("Session key hash (sha256)"),
    _("The time when access attempt expires and is no longer valid."),
    _("User Agent"),
    _("Username"),
    _("access attempt expiration"),
    _("access attempt expirations"),
    _("access attempt"),
    _("access attempts"),
    _("access failure"),
    _("access failures"),
    _("access log"),
    _("access logs"),
]
