"""Channels (WeChat QR codes with a scene) and every touch of a subscriber through them."""

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

CONVERSION_BATCH_MAX = 1000  # events per request to POST /api/conversions/

SCENE_STR_MAX = 64  # WeChat's limit for scene_str
TEMPORARY_MAX_SECONDS = 2592000  # 30 days, WeChat's limit for temporary QR codes


class Channel(models.Model):
    """A WeChat QR code with a scene string: follows and scans through it are attributed to the channel."""

    class Kind(models.TextChoices):
        PERMANENT = "permanent", _("Permanent")
        TEMPORARY = "temporary", _("Temporary")

    name = models.CharField(_("name"), max_length=100)
    scene_str = models.CharField(
        _("scene"),
        max_length=SCENE_STR_MAX,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9_.:-]+$", _("Use letters, digits, and the characters _ . : - only (no spaces).")
            )
        ],
        help_text=_("The QR code's scene string (1 to 64 characters), e.g. poster-2026-spring."),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.PERMANENT)
    expire_seconds = models.PositiveIntegerField(
        _("expires after (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(60), MaxValueValidator(TEMPORARY_MAX_SECONDS)],
        help_text=_("Temporary QR codes only: at most 2592000 (30 days)."),
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    ticket = models.CharField(_("QR ticket"), max_length=256, blank=True, default="")
    url = models.CharField(_("QR content URL"), max_length=512, blank=True, default="")
    tags = models.ManyToManyField(
        "accounts.Tag",
        related_name="channels",
        blank=True,
        verbose_name=_("tags"),
        help_text=_("Applied to every subscriber who follows or scans through this channel."),
    )
    welcome_reply = models.TextField(
        _("welcome reply"),
        blank=True,
        default="",
        help_text=_("Sent as the reply to a follow or scan through this channel. Empty: no reply."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ChannelTouch(models.Model):
    """One follow or scan of a subscriber through a channel (every touch; the first one is on the subscriber)."""

    class Kind(models.TextChoices):
        FOLLOW = "follow", _("Follow")
        SCAN = "scan", _("Scan")

    subscriber = models.ForeignKey(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="channel_touches", verbose_name=_("subscriber")
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="touches", verbose_name=_("channel"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    at = models.DateTimeField(_("at"))
    interaction = models.OneToOneField(
        "accounts.Interaction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="channel_touch",
        verbose_name=_("interaction"),
    )

    class Meta:
        verbose_name = _("channel touch")
        verbose_name_plural = _("channel touches")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["channel", "kind", "at"], name="channeltouch_channel_at_idx"),
            models.Index(fields=["subscriber", "at"], name="channeltouch_subscriber_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.channel_id} {self.at:%Y-%m-%d %H:%M:%S}"


class ChannelTally(models.Model):
    """An addition to a channel's counters (campaigns.tallies): follows through it, and subscribers it brought
    first. The channels list reads their sums instead of counting a million subscribers and touches per channel.
    Inserted in the transaction of the touch or first touch they count (no hot row per popular QR code); folded
    into one row per counter by the beat; `manage.py channel_tallies_rebuild` recounts them."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="tallies", verbose_name=_("channel"))
    key = models.CharField(_("counter"), max_length=32)
    n = models.BigIntegerField(_("addition"))

    class Meta:
        verbose_name = _("channel counter addition")
        verbose_name_plural = _("channel counter additions")
        indexes = [models.Index(fields=["channel", "key"], name="channeltally_channel_key_idx")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.key} {self.n:+d}"


class FunnelSettings(models.Model):
    """The funnel's stage rules, one row (pk=1), edited in the admin. Read through stages.funnel_settings()."""

    interactive_min_interactions = models.PositiveSmallIntegerField(
        _("interactive: interactions"),
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("Subscriber-originated interactions needed to become interactive."),
    )
    interactive_min_days = models.PositiveSmallIntegerField(
        _("interactive: different days"),
        default=2,
        validators=[MinValueValidator(1)],
        help_text=_("On at least this many different days."),
    )
    interactive_window_days = models.PositiveSmallIntegerField(
        _("interactive: within days"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("All of them within this many days."),
    )
    menu_click_engages = models.BooleanField(
        _("menu clicks engage"),
        default=True,
        help_text=_("A menu click (click or view event) makes a subscriber engaged."),
    )
    default_window_days = models.PositiveSmallIntegerField(
        _("default conversion window (days)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("Reports count a step only when it was reached within this many days after the follow."),
    )

    class Meta:
        verbose_name = _("funnel settings")
        verbose_name_plural = _("funnel settings")

    def __str__(self) -> str:
        return str(_("Funnel settings"))

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)


# The built-in types (campaigns migration 0003) keep their English name in the database; shown translated.
BUILTIN_CONVERSION_TYPES = {
    "register": ("Register", _("Register")),
    "purchase": ("Purchase", _("Purchase")),
    "download": ("Download", _("Download")),
}


class ConversionType(models.Model):
    """What a conversion is: register, purchase, download (created by a migration) or a custom type."""

    slug = models.SlugField(_("code"), max_length=50, unique=True, help_text=_("Sent as `type` in the API."))
    name = models.CharField(_("name"), max_length=100)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("conversion type")
        verbose_name_plural = _("conversion types")
        ordering = ["slug"]

    def __str__(self) -> str:
        english, label = BUILTIN_CONVERSION_TYPES.get(self.slug, (None, None))
        return str(label) if self.name == english else self.name


class Conversion(models.Model):
    """One conversion of a subscriber (a registration, a purchase ...), reported by another system through the API.

    Exactly once per (type, external_id). Its first-touch channel (the subscriber's source channel) and last-touch
    push and content (of the last tracked link with a push the person opened before it) are stored on insert from
    what is known, and filled in later by the follow's and the clicks' follow-ups (campaigns.attribution).
    """

    type = models.ForeignKey(
        ConversionType,
        on_delete=models.PROTECT,
        related_name="conversions",
        verbose_name=_("type"),
        db_index=False,  # covered by conversion_type_external_uniq
    )
    subscriber = models.ForeignKey(
        "accounts.Subscriber",
        on_delete=models.CASCADE,
        related_name="conversions",
        verbose_name=_("subscriber"),
        db_index=False,  # covered by conversion_subscriber_at_idx
    )
    external_id = models.CharField(_("external ID"), max_length=128)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    occurred_at = models.DateTimeField(_("occurred at"))
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    channel = models.ForeignKey(
        Channel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversions",
        verbose_name=_("first-touch channel"),
    )
    push = models.ForeignKey(
        "content.Push",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversions",
        verbose_name=_("last-touch push"),
    )
    content = models.ForeignKey(
        "content.Article",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversions",
        verbose_name=_("last-touch content"),
    )
    created_at = models.DateTimeField(_("received at"), auto_now_add=True)

    class Meta:
        verbose_name = _("conversion")
        verbose_name_plural = _("conversions")
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["subscriber", "occurred_at"], name="conversion_subscriber_at_idx")]
        constraints = [
            models.UniqueConstraint(fields=["type", "external_id"], name="conversion_type_external_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.type_id}:{self.external_id}"


class Campaign(models.Model):
    """A marketing campaign: its channels (QR codes) bring followers, its pushes engage them."""

    name = models.CharField(_("name"), max_length=100)
    goal = models.TextField(_("goal"), blank=True, default="")
    starts_on = models.DateField(_("starts on"), null=True, blank=True)
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    channels = models.ManyToManyField(Channel, related_name="campaigns", blank=True, verbose_name=_("channels"))
    pushes = models.ManyToManyField("content.Push", related_name="campaigns", blank=True, verbose_name=_("pushes"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_on__isnull=True)
                | models.Q(starts_on__isnull=True)
                | models.Q(ends_on__gte=models.F("starts_on")),
                name="campaign_period_ordered",
                violation_error_message=_("The campaign cannot end before it starts."),
            )
        ]

    def __str__(self) -> str:
        return self.name


class FunnelReport(models.Model):
    """No table: the admin's entry for the funnel reports (permission `view_funnelreport`)."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = _("funnel report")
        verbose_name_plural = _("funnel reports")

    def __str__(self) -> str:
        return str(_("Funnel report"))


class FunnelStep(models.Model):
    """The funnel summary (campaigns.summary): one row per subscriber and funnel step reached, kept current by the
    stage maintenance, read by every funnel report."""

    subscriber = models.ForeignKey(
        "accounts.Subscriber",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("subscriber"),
        db_index=False,  # covered by funnelstep_subscriber_step_uniq
    )
    step = models.PositiveSmallIntegerField(
        _("step"), help_text=_("0 followed, 1 engaged, 2 interactive, 3 converted.")
    )
    day = models.DateField(_("day of the first follow"))
    channel_key = models.BigIntegerField(_("source channel"), help_text=_("The channel's ID, 0 for none."))
    content_key = models.BigIntegerField(_("engaging content"), help_text=_("The article's ID, 0 for none."))
    reach_us = models.BigIntegerField(_("microseconds from the follow"))
    delay_us = models.BigIntegerField(_("microseconds from the previous step"))

    class Meta:
        verbose_name = _("funnel summary row")
        verbose_name_plural = _("funnel summary rows")
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "step"], name="funnelstep_subscriber_step_uniq"),
        ]
        indexes = [
            # The reports: a range of days, every other column they read inside the index.
            models.Index(
                fields=["day", "step"],
                include=["channel_key", "content_key", "reach_us", "delay_us", "subscriber"],
                name="funnelstep_day_idx",
            ),
            # The exact medians (campaigns.cells): the rows of one delay bucket of a step.
            models.Index(
                fields=["step", "delay_us"],
                include=["day", "reach_us", "channel_key", "content_key"],
                name="funnelstep_step_delay_idx",
            ),
            # ... and of one group's rows (a channel, an article, a cohort week's days).
            models.Index(fields=["step", "channel_key", "delay_us"], name="funnelstep_step_channel_idx"),
            models.Index(fields=["step", "content_key", "delay_us"], name="funnelstep_step_content_idx"),
            models.Index(fields=["step", "day", "delay_us"], name="funnelstep_step_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id}:{self.step}"


class FunnelCell(models.Model):
    """Counts of the funnel summary's rows (campaigns.cells) by period, group, step, window class and delay bucket:
    what the reports add up instead of counting rows, and where they find the bucket of each median. Written only by
    the triggers on campaigns_funnelstep (additions, in the transaction of the rows they count), folded by the beat
    into one row per cell."""

    kind = models.PositiveSmallIntegerField(
        _("kind"),
        help_text=_(
            "0 by week; 1 by month, channel; 2 by month, article; 3 by quarter, channel; 4 by quarter, article."
        ),
    )
    period = models.DateField(_("first day of the week, month or quarter"))
    grp = models.BigIntegerField(_("group"), help_text=_("The channel's or article's ID, 0 for none or by week."))
    step = models.PositiveSmallIntegerField(_("step"))
    wclass = models.PositiveSmallIntegerField(_("window class"))
    bucket = models.PositiveSmallIntegerField(_("delay bucket"))
    n = models.BigIntegerField(_("rows"))
    folded = models.BooleanField(_("folded"), default=False)

    class Meta:
        verbose_name = _("funnel summary cell")
        verbose_name_plural = _("funnel summary cells")
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "period", "grp", "step", "wclass", "bucket"],
                condition=models.Q(folded=True),
                name="funnelcell_folded_uniq",
            ),
        ]
        indexes = [
            # (No INCLUDE: a fold's update of `n` then stays a HOT update, pruned without a VACUUM.)
            models.Index(fields=["kind", "period"], name="funnelcell_kind_period_idx"),
            models.Index(fields=["id"], condition=models.Q(folded=False), name="funnelcell_unfolded_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.period}:{self.grp}:{self.step}:{self.wclass}:{self.bucket} {self.n:+d}"
