"""The content library: topics, articles (served at /c/<slug>/), WeChat message templates and tracked links.

Segments, pushes and deliveries are built on these models: a push sends an Article and/or a MessageTemplate; every
link in what it sends goes through a TrackedLink (/r/<token>).
"""

from django.conf import settings
from django.core.validators import FileExtensionValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from wechat_crm.models import Authored

from .notice_models import NoticeConsent, NoticeConsentChange, NoticeTemplate
from .rendering import markdown_render
from .validators import validate_cover_size

COVER_EXTENSIONS = ["jpg", "jpeg", "png", "gif", "webp"]


class Topic(models.Model):
    """What an article is about. The unit of subscribers' topic preferences and opt-outs."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    slug = models.SlugField(
        _("slug"), max_length=64, unique=True, blank=True, help_text=_("Filled in from the name when left empty.")
    )
    description = models.TextField(_("description"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("topic")
        verbose_name_plural = _("topics")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            from .slugs import slug_unique

            self.slug = slug_unique(Topic, self.name, max_length=64)
        super().save(*args, **kwargs)


class Article(Authored):
    """An article written in Markdown and served as a mobile page at /c/<slug>/ once published.

    `body_html` is the sanitised rendering of `body`, refreshed on every save: the page never renders operators'
    Markdown on a request, and never serves a tag or attribute that bleach did not allow.
    Status changes only through `content.services.article_set_status`.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    title = models.CharField(_("title"), max_length=200)
    slug = models.SlugField(
        _("slug"),
        max_length=100,
        unique=True,
        blank=True,
        help_text=_("The page's address /c/<slug>/. Filled in from the title (or a short id) when left empty."),
    )
    digest = models.CharField(
        _("digest"), max_length=255, blank=True, default="", help_text=_("A short summary shown in message cards.")
    )
    body = models.TextField(_("body"), blank=True, default="", help_text=_("Markdown."))
    body_html = models.TextField(_("rendered body"), blank=True, default="", editable=False)
    cover = models.ImageField(
        _("cover image"),
        upload_to="covers/%Y/%m/",
        blank=True,
        default="",
        validators=[FileExtensionValidator(COVER_EXTENSIONS), validate_cover_size],
        help_text=_("JPEG, PNG, GIF or WebP, at most 5 MB."),
    )
    topics = models.ManyToManyField(Topic, blank=True, related_name="articles", verbose_name=_("topics"))
    author = models.CharField(_("author"), max_length=64, blank=True, default="")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT, editable=False, db_index=True
    )
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("article")
        verbose_name_plural = _("articles")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-published_at"], name="article_status_published_idx")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            from .slugs import slug_unique

            self.slug = slug_unique(Article, self.title, max_length=100)
        update_fields = kwargs.get("update_fields")
        if update_fields is None:
            self.body_html = markdown_render(self.body)
        elif "body" in update_fields:
            self.body_html = markdown_render(self.body)
            kwargs["update_fields"] = {*update_fields, "body_html"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("content:article-detail", kwargs={"slug": self.slug})

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    def cover_url(self) -> str:
        """The cover's absolute URL (on PUBLIC_BASE_URL): WeChat fetches pictures of messages from it. "" without."""
        if not self.cover:
            return ""
        url = self.cover.url
        if url.startswith(("http://", "https://")):
            return url
        return settings.PUBLIC_BASE_URL.rstrip("/") + "/" + url.lstrip("/")

    def public_url(self) -> str:
        """The target of tracked links and templates: the permanent WeChat URL once the article is published on
        WeChat (publishing.ArticleWeChat), else the absolute address of our page (PUBLIC_BASE_URL + /c/<slug>/)."""
        wechat = getattr(self, "wechat", None) if self.pk else None
        if wechat is not None and wechat.wechat_url:
            return wechat.wechat_url
        return settings.PUBLIC_BASE_URL.rstrip("/") + self.get_absolute_url()


class MessageTemplate(Authored):
    """A WeChat template message: WeChat's template_id and, per field, a Django template string.

    `fields` is a list of {"key": "first", "value": "{{ subscriber.remark|default:'朋友' }}", "color": "#173177"};
    each value is rendered per subscriber by `content.services.template_render`. The values are checked when the
    template is saved (syntax, allowed tags, known variables; see content.templating). `version` grows on every
    save, so compiled templates are cached per (id, version).
    """

    class Purpose(models.TextChoices):
        SERVICE = "service", _("Service notice")
        MARKETING = "marketing", _("Marketing")

    title = models.CharField(_("title"), max_length=200, help_text=_("The operators' name for this template."))
    purpose = models.CharField(
        _("purpose"),
        max_length=16,
        choices=Purpose.choices,
        default=Purpose.SERVICE,
        help_text=_(
            "WeChat allows template messages for service notices (an order, an appointment, an account change). "
            "A marketing template is sent only by a push that explicitly allows it, never by journeys, auto-replies "
            "or operators (conversations.policy)."
        ),
    )
    wechat_template_id = models.CharField(
        _("WeChat template ID"), max_length=128, help_text=_("The template_id from the WeChat admin console.")
    )
    fields = models.JSONField(
        _("fields"),
        default=list,
        blank=True,
        help_text=_(
            'A JSON list of fields: [{"key": "first", "value": "Hello {{ subscriber.nickname }}", '
            '"color": "#173177"}]. Each value is a Django template rendered per subscriber.'
        ),
    )
    link_url = models.URLField(
        _("link URL"), max_length=1024, blank=True, default="", help_text=_("Opened when the message is tapped.")
    )
    article = models.ForeignKey(
        Article,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="message_templates",
        verbose_name=_("article"),
        help_text=_("Link to this article instead of a URL."),
    )
    miniprogram_appid = models.CharField(_("mini program AppID"), max_length=64, blank=True, default="")
    miniprogram_pagepath = models.CharField(_("mini program page path"), max_length=512, blank=True, default="")
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(link_url="") | models.Q(article__isnull=True),
                name="messagetemplate_one_link",
                violation_error_message=_("Give either a link URL or an article, not both."),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .errors import TemplateInvalid
        from .templating import fields_check

        errors: dict[str, list] = {}
        try:
            self.fields = fields_check(self.fields)
        except TemplateInvalid as exc:
            errors["fields"] = exc.messages()
        if bool(self.miniprogram_appid) != bool(self.miniprogram_pagepath):
            errors["miniprogram_pagepath"] = [_("Give both the mini program AppID and its page path, or neither.")]
        if errors:
            raise ValidationError(errors)


class TrackedLink(models.Model):
    """One target URL that tracked links (/r/<token>) lead to. Rows are never changed, so they are cached forever.

    The signed token carries the row's id, never the URL itself: tokens stay short whatever the URL's length.
    """

    url = models.TextField(_("URL"))
    url_hash = models.CharField(_("URL hash"), max_length=64, unique=True, help_text=_("SHA-256 of the URL."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tracked link")
        verbose_name_plural = _("tracked links")
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.url


# --- Sending: the account's policy, segments, pushes and their deliveries -------------------------------------------


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

        from .errors import SegmentInvalid
        from .services.segments import rules_validate

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


class Delivery(models.Model):
    """One recipient of one push (unique), with what became of the message."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        ERROR = "error", _("Error")
        UNKNOWN = "unknown", _("Unknown")

    push = models.ForeignKey(Push, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("push"))
    subscriber = models.ForeignKey(
        "accounts.Subscriber",
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("subscriber"),
        db_index=False,  # covered by delivery_sub_claimed_idx
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Push.Channel.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(_("reason"), max_length=64, blank=True, default="")
    errcode = models.IntegerField(_("WeChat errcode"), null=True, blank=True)
    msgid = models.BigIntegerField(_("WeChat msgid"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    unfollowed_at = models.DateTimeField(
        _("unfollowed at"),
        null=True,
        blank=True,
        help_text=_("The subscriber's first unfollow after the message was claimed for sending (within 7 days)."),
    )
    clicked_at = models.DateTimeField(
        _("clicked at"), null=True, blank=True, help_text=_("The subscriber's first click of a link of the push.")
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["push", "subscriber"], name="delivery_one_per_push_subscriber"),
        ]
        indexes = [
            models.Index(fields=["push", "status"], name="delivery_push_status_idx"),
            models.Index(fields=["subscriber", "claimed_at"], name="delivery_sub_claimed_idx"),
            models.Index(fields=["channel", "claimed_at"], name="delivery_chan_claimed_idx"),
            models.Index(fields=["msgid"], name="delivery_msgid_idx", condition=models.Q(msgid__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.push_id}/{self.subscriber_id} {self.status}"


class MassBatch(models.Model):
    """One mass-send call of a push (up to 10,000 openids, or one tag), idempotent through its clientmsgid.

    MASSSENDJOBFINISH sets its totals (matched by msg_id); the push's totals are their sum.
    """

    push = models.ForeignKey(Push, on_delete=models.CASCADE, related_name="mass_batches", verbose_name=_("push"))
    clientmsgid = models.CharField(_("clientmsgid"), max_length=64, unique=True)
    msg_id = models.BigIntegerField(_("WeChat msg_id"), null=True, blank=True, unique=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    job_status = models.CharField(_("job status"), max_length=64, blank=True, default="")
    total_count = models.PositiveIntegerField(_("total"), null=True, blank=True)
    filter_count = models.PositiveIntegerField(_("after filtering"), null=True, blank=True)
    sent_count = models.PositiveIntegerField(_("sent"), null=True, blank=True)
    error_count = models.PositiveIntegerField(_("errors"), null=True, blank=True)
    msg_data_id = models.BigIntegerField(_("WeChat msg_data_id"), null=True, blank=True, db_index=True)
    refused_at = models.DateTimeField(
        _("refused by WeChat at"),
        null=True,
        blank=True,
        help_text=_("When WeChat answered that the mass-send quota is used up."),
    )
    article_urls = models.JSONField(_("article URLs"), default=dict, blank=True, help_text=_("By article index."))
    copyright_check = models.JSONField(_("copyright check"), default=dict, blank=True)

    class Meta:
        verbose_name = _("mass-send batch")
        verbose_name_plural = _("mass-send batches")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.clientmsgid


class PushTally(models.Model):
    """An addition to one of a push's counters (content.services.deliveries.tallies): the push report, its progress
    and the dashboard read the sums of these rows instead of counting a million deliveries.

    Rows are only ever inserted, in the same statement or transaction as the change they count (a delivery's status,
    a click, an unfollow), so that many workers add to one push without waiting for each other's row lock; the beat
    folds each push's rows into one per counter now and then. `manage.py push_tallies_rebuild` recounts them from the
    deliveries, clicks and unfollows.
    """

    push = models.ForeignKey(Push, on_delete=models.CASCADE, related_name="tallies", verbose_name=_("push"))
    key = models.CharField(_("counter"), max_length=80)
    n = models.BigIntegerField(_("addition"))

    class Meta:
        verbose_name = _("push counter addition")
        verbose_name_plural = _("push counter additions")
        indexes = [models.Index(fields=["push", "key"], name="pushtally_push_key_idx")]

    def __str__(self) -> str:
        return f"{self.push_id} {self.key} {self.n:+d}"


__all__ = [
    "Article",
    "Delivery",
    "MassBatch",
    "MessageTemplate",
    "NoticeConsent",
    "NoticeConsentChange",
    "NoticeTemplate",
    "OperatorProfile",
    "Push",
    "PushTally",
    "Segment",
    "SendPolicy",
    "Topic",
    "TrackedLink",
]
