"""Subscription notices (订阅通知): the account's notice templates, and each person's consent to them with its
history. Imported by content.models (the app's models module), so Django registers them with the content app.

A person consents per template in WeChat's popup (subscribe_msg_popup_event) and may withdraw later in WeChat's
settings (subscribe_msg_change_event). A one-time template's acceptance allows one notice: `credits` counts the
notices still allowed; a long-term template allows notices while accepted.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class NoticeTemplate(models.Model):
    """One of the account's notice templates, as WeChat holds it (fetched with "Sync", or added from the library).

    `keywords` lists the template's fields in order: [{"key": "thing1", "name": "商品名称", "rule": "thing"}]; the
    key names WeChat's value rule (wechat_crm.wechat.notice_rules)."""

    class Kind(models.IntegerChoices):
        ONE_TIME = 2, _("One-time (each acceptance allows one notice)")
        LONG_TERM = 3, _("Long-term (notices while accepted)")

    template_id = models.CharField(_("WeChat template ID"), max_length=128, unique=True)
    title = models.CharField(_("title"), max_length=200)
    kind = models.PositiveSmallIntegerField(_("kind"), choices=Kind.choices, default=Kind.ONE_TIME)
    content = models.TextField(_("content"), blank=True, default="", help_text=_("As WeChat gives it."))
    example = models.TextField(_("example"), blank=True, default="")
    keywords = models.JSONField(_("keywords"), default=list, blank=True)
    library_tid = models.CharField(
        _("library title ID"), max_length=32, blank=True, default="", help_text=_("Set when added from the library.")
    )
    scene_desc = models.CharField(_("service scene"), max_length=15, blank=True, default="")
    on_wechat = models.BooleanField(
        _("on WeChat"), default=True, help_text=_("Cleared when the last sync no longer found it on WeChat.")
    )
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("notice template")
        verbose_name_plural = _("notice templates")
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title

    @property
    def keys(self) -> list[str]:
        return [keyword["key"] for keyword in self.keywords]


class NoticeConsent(models.Model):
    """A person's current consent to one notice template (by WeChat's template id: an event may name a template
    before it is synced)."""

    subscriber = models.ForeignKey(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="notice_consents", verbose_name=_("subscriber")
    )
    template_id = models.CharField(_("WeChat template ID"), max_length=128)
    accepted = models.BooleanField(_("accepted"), default=False)
    credits = models.PositiveIntegerField(
        _("notices allowed"), default=0, help_text=_("One-time templates: acceptances not yet used by a notice.")
    )
    changed_at = models.DateTimeField(_("changed at"), help_text=_("WeChat's time of the last decision."))

    class Meta:
        verbose_name = _("notice consent")
        verbose_name_plural = _("notice consents")
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "template_id"], name="noticeconsent_one_per_template"),
        ]
        indexes = [models.Index(fields=["template_id", "subscriber"], name="noticeconsent_template_idx")]

    def __str__(self) -> str:
        return f"{self.subscriber_id}/{self.template_id} {'accepted' if self.accepted else 'not accepted'}"


class NoticeConsentChange(models.Model):
    """One decision of a person about a notice template. History: rows are only ever added."""

    class Decision(models.TextChoices):
        ACCEPT = "accept", _("Accepted")
        REJECT = "reject", _("Rejected")
        WITHDRAW = "withdraw", _("Withdrawn later")

    subscriber = models.ForeignKey(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="notice_consent_changes",
        verbose_name=_("subscriber"),
    )  # fmt: skip
    template_id = models.CharField(_("WeChat template ID"), max_length=128)
    decision = models.CharField(_("decision"), max_length=16, choices=Decision.choices)
    popup_scene = models.CharField(_("popup scene"), max_length=16, blank=True, default="")
    at = models.DateTimeField(_("at"))
    interaction = models.ForeignKey(
        "accounts.Interaction", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("interaction"),
    )  # fmt: skip

    class Meta:
        verbose_name = _("notice consent change")
        verbose_name_plural = _("notice consent changes")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subscriber", "at"], name="noticechange_subscriber_at_idx")]
        constraints = [
            # An event's items are recorded once even when its follow-up runs twice.
            models.UniqueConstraint(
                fields=["interaction", "template_id"], name="noticechange_once_per_event",
                condition=models.Q(interaction__isnull=False),
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.template_id} {self.get_decision_display()} {self.at:%Y-%m-%d %H:%M}"
