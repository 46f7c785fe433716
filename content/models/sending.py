"""Sending: the account's send policy, operators' own openids, segments and pushes."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from wechat_crm.models import Authored

from .library import Article, MessageTemplate
from .notices import NoticeTemplate


class SendPolicy(models.Model):
    """The account's send policy: one row (pk=1), read with `SendPolicy.current()`.

    WeChat's quotas depend on the account type; the frequency cap and quiet hours protect followers from over-sending.
    """

    class AccountType(models.TextChoices):
        SUBSCRIPTION = "subscription", _("Subscription account")
        SERVICE = "service", _("Service account")

    account_type = models.CharField(
        _("account type"), max_length=16, choices=AccountType.choices, default=AccountType.SERVICE
    )
    frequency_cap = models.PositiveSmallIntegerField(
        _("frequency cap"), default=4, help_text=_("At most this many pushes per subscriber in the window below.")
    )
    frequency_window_days = models.PositiveSmallIntegerField(_("frequency window (days)"), default=7)
    quiet_hours_enabled = models.BooleanField(_("quiet hours"), default=True)
    quiet_start = models.TimeField(_("quiet hours start"), default="22:00")
    quiet_end = models.TimeField(_("quiet hours end"), default="08:00")
    quiet_timezone = models.CharField(_("quiet hours time zone"), max_length=64, default="Asia/Shanghai")
    template_daily_quota = models.PositiveIntegerField(_("template messages per day"), default=100_000)
    mass_daily_quota = models.PositiveSmallIntegerField(_("mass sends per day (subscription account)"), default=1)
    mass_monthly_per_subscriber = models.PositiveSmallIntegerField(
        _("mass messages per subscriber per month (service account)"), default=4
    )
    max_retry_delay_seconds = models.PositiveIntegerField(
        _("longest retry delay (seconds)"),
        default=300,
        help_text=_("A page that WeChat asks to slow down (45009/45011/5xx) is retried after at most this long."),
    )
    max_attempts = models.PositiveSmallIntegerField(_("attempts per message"), default=8)

    class Meta:
        verbose_name = _("send policy")
        verbose_name_plural = _("send policy")

    def __str__(self) -> str:
        return str(_("Send policy"))

    def save(self, *args, **kwargs) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> "SendPolicy":
        policy, created = cls.objects.get_or_create(pk=1)
        if created:
            policy.refresh_from_db()  # the time defaults are strings until read back
        return policy


class OperatorProfile(models.Model):
    """An operator's own WeChat openid, where "Send a test to me" goes."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wechat_profile", verbose_name=_("user")
    )
    openid = models.CharField(_("OpenID"), max_length=64, help_text=_("Your own openid on this Official Account."))

    class Meta:
        verbose_name = _("operator profile")
        verbose_name_plural = _("operator profiles")

    def __str__(self) -> str:
        return str(self.user)


class Segment(Authored):
    """Who receives a push: rules stored as JSON data, validated on save, compiled to one query.

    See content.services.segments for the rule language.
    """

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    rules = models.JSONField(
        _("rules"),
        default=dict,
        blank=True,
        help_text=_(
            'JSON: {"op": "and", "rules": [{"type": "tags", "match": "any", "tags": [1, 2]}, '
            '{"type": "last_interaction", "within_days": 30}]}. Empty: every follower.'
        ),
    )

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from ..errors import SegmentInvalid
        from ..services.segments import rules_validate

        try:
            self.rules = rules_validate(self.rules)
        except SegmentInvalid as exc:
            raise ValidationError({"rules": exc.message}) from exc


class Push(Authored):
    """A message sent to a segment at `send_at`. Status changes only through services.push_set_status."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        PARTIALLY_FAILED = "partially_failed", _("Partially failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Channel(models.TextChoices):
        TEMPLATE = "template", _("Template message")
        CUSTOM = "custom", _("Customer-service message (48-hour window)")
        MASS_TAG = "mass_tag", _("Mass send to a tag")
        MASS_OPENID = "mass_openid", _("Mass send to an openid list")
        NEWS = "news", _("News (the article as a WeChat draft, mass-sent)")
        NOTICE = "notice", _("Subscription notice (only to people who accepted it)")

    name = models.CharField(_("name"), max_length=200)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, default=Channel.TEMPLATE)
    article = models.ForeignKey(
        Article, on_delete=models.PROTECT, null=True, blank=True, related_name="pushes", verbose_name=_("article")
    )
    template = models.ForeignKey(
        MessageTemplate,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pushes",
        verbose_name=_("message template"),
    )
    text = models.TextField(
        _("text"),
        blank=True,
        default="",
        help_text=_("For customer-service and mass messages without an article; links are tracked."),
    )
    notice_template = models.ForeignKey(
        NoticeTemplate,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pushes",
        verbose_name=_("notice template"),
        help_text=_("For a subscription notice: sent only to the people who accepted this template."),
    )
    notice_values = models.JSONField(
        _("notice values"),
        default=dict,
        blank=True,
        help_text=_('For a subscription notice, a value per keyword: {"thing1": "周年庆", "time2": "15:00"}.'),
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.PROTECT, null=True, blank=True, related_name="pushes", verbose_name=_("segment")
    )
    mass_tag = models.ForeignKey(
        "accounts.Tag",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("mass-send tag"),
        help_text=_("For a mass send by tag: the WeChat tag that receives it."),
    )
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    frequency_cap = models.PositiveSmallIntegerField(
        _("frequency cap override"), null=True, blank=True, help_text=_("Empty: the account's send policy.")
    )
    ignore_quiet_hours = models.BooleanField(
        _("ignore quiet hours"), default=False, help_text=_("Only for urgent service notices.")
    )
    allow_marketing_template = models.BooleanField(
        _("allow a marketing template"),
        default=False,
        help_text=_(
            "WeChat's rules reserve template messages for service notices: sending marketing through them can cost "
            "the account its template rights. Tick only if you accept that risk for this push; subscription "
            "notices are the sanctioned channel for marketing."
        ),
    )
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.DRAFT, editable=False, db_index=True
    )
    recipients = models.PositiveIntegerField(_("recipients"), default=0, editable=False)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True, editable=False)
    resolved_at = models.DateTimeField(
        _("recipients resolved at"), null=True, blank=True, editable=False, help_text=_("Deliveries written.")
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("push")
        verbose_name_plural = _("pushes")
        ordering = ["-send_at", "-id"]
        indexes = [
            models.Index(fields=["send_at"], name="push_due_idx", condition=models.Q(status="scheduled")),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_mass(self) -> bool:
        return self.channel in (self.Channel.MASS_TAG, self.Channel.MASS_OPENID, self.Channel.NEWS)
