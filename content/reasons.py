"""Why a delivery was skipped, failed or left unknown: a stable code in the database and the API, a label in the admin.

The codes are written by the send policy (conversations.policy.Reason: skips of pushes, journeys, auto-replies and
operator messages), content.services.deliveries (quotas, cancellation), wechat_crm.wechat.errors
("wechat:<errcode>", a network error's class name), WeChat's job-finish reports ("user_block", "system_failed") and
accounts.privacy ("erased").
"""

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

LABELS = {
    "not_following": _("not following"),
    "paused": _("pushes paused by the subscriber"),
    "topic_opt_out": _("opted out of the topic"),
    "frequency_cap": _("frequency cap reached"),
    "outside_window": _("outside WeChat's customer-service window"),
    "window_limit": _("WeChat's message limit of the customer-service window reached"),
    "quiet_hours": _("deferred to the end of quiet hours"),
    "template_marketing": _("marketing template without the push's explicit permission"),
    "no_template": _("no template to send"),
    "no_consent": _("no consent to the subscription notice"),
    "no_channel": _("no channel applies (window closed, no consent, no service template)"),
    "quota_mass_monthly": _("monthly mass-message quota reached"),
    "quota_mass_daily": _("daily mass-send quota reached"),
    "quota_template_daily": _("daily template-message quota reached"),
    "cancelled": _("push cancelled"),
    "erased": _("subscriber erased"),
    "worker_lost": _("worker stopped while sending: outcome unknown, not resent"),
    "user_block": _("blocked by the subscriber"),
    "system_failed": _("WeChat system failure"),
    "failed": _("failed"),
}


def reason_label(code: str) -> str:
    """The operator's words for a reason code; an unknown code is shown as it is."""
    if not code:
        return ""
    if code in LABELS:
        return str(LABELS[code])
    prefix, _sep, rest = code.partition(":")
    if prefix == "wechat" and rest:
        return gettext("WeChat error %(errcode)s") % {"errcode": rest}
    if prefix == "retries_exhausted" and rest:
        return gettext("gave up after retries: %(reason)s") % {"reason": reason_label(rest)}
    return code
