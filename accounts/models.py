"""Subscribers of the Official Account, their follow history and every message or event they send us."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.expressions import StageDelay
from accounts.kinds import InteractionKind
from wechat_crm.models import Timestamped


class Tag(models.Model):
    """A label on subscribers. Optionally mirrored by a WeChat tag (`wechat_tag_id`), synced both ways."""

    name = models.CharField(_("name"), max_length=30, unique=True, help_text=_("At most 30 bytes, as WeChat allows."))
    wechat_tag_id = models.IntegerField(
        _("WeChat tag ID"), null=True, blank=True, unique=True, help_text=_("Empty until the tag exists on WeChat.")
    )
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscriber(Timestamped):
    """One WeChat user (openid) who follows or followed the account.

    Written by the callback (follow state, last interaction) and by the profile fetch (the profile fields).
    """

    class Sex(models.IntegerChoices):
        UNKNOWN = 0, _("Unknown")
        MALE = 1, _("Male")
        FEMALE = 2, _("Female")

    class Stage(models.TextChoices):
        FOLLOWED = "followed", _("Followed")
        ENGAGED = "engaged", _("Engaged")
        INTERACTIVE = "interactive", _("Interactive")
        CONVERTED = "converted", _("Converted")

    openid = models.CharField(_("OpenID"), max_length=64)  # unique: see Meta.constraints
    # NULL, not "", for "unknown": a later unique-per-unionid rule must not collide on empty strings.
    unionid = models.CharField(_("UnionID"), max_length=64, null=True, blank=True)  # noqa: DJ001 (indexed in Meta)
    is_following = models.BooleanField(_("following"), default=False)
    subscribed_at = models.DateTimeField(_("subscribed at"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    source_scene = models.CharField(
        _("source scene"),
        max_length=128,
        blank=True,
        default="",
        help_text=_("The QR scene of the first follow we received (first touch). Never overwritten."),
    )
    last_interaction_at = models.DateTimeField(_("last interaction at"), null=True, blank=True)

    # Profile, filled in later by the profile fetch (WeChat's profile call).
    nickname = models.CharField(_("nickname"), max_length=100, blank=True, default="")
    remark = models.CharField(_("remark"), max_length=100, blank=True, default="")
    language = models.CharField(_("language"), max_length=32, blank=True, default="")
    sex = models.PositiveSmallIntegerField(_("sex"), choices=Sex.choices, default=Sex.UNKNOWN)
    city = models.CharField(_("city"), max_length=64, blank=True, default="")
    province = models.CharField(_("province"), max_length=64, blank=True, default="")
    country = models.CharField(_("country"), max_length=64, blank=True, default="")
    headimgurl = models.URLField(_("avatar URL"), max_length=512, blank=True, default="")
    subscribe_scene = models.CharField(_("subscribe scene"), max_length=64, blank=True, default="")
    qr_scene_str = models.CharField(_("QR scene string"), max_length=128, blank=True, default="")
    profile_fetched_at = models.DateTimeField(
        _("profile fetched at"),
        null=True,
        blank=True,
        help_text=_("Empty, or older than the last follow: the profile fetch is pending."),
    )
    profile_claimed_until = models.DateTimeField(
        _("profile fetch claimed until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("A worker is fetching this profile; others leave it alone until then."),
    )

    # Tags and attribution.
    tags = models.ManyToManyField(Tag, related_name="subscribers", blank=True, verbose_name=_("tags"))
    source_channel = models.ForeignKey(
        "campaigns.Channel",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="first_touch_subscribers",
        verbose_name=_("source channel"),
        help_text=_("The channel (QR code) of the first touch. Never overwritten."),
    )
    # A follow that a forwarded tracked link brought (web authorisation saw the person open it before following).
    source_push = models.ForeignKey(
        "content.Push",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # subscriber_source_push_idx (partial)
        verbose_name=_("source push"),
        help_text=_("The push whose link, forwarded to this person, brought their follow. Never overwritten."),
    )
    source_content = models.ForeignKey(
        "content.Article",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # read per subscriber only
        verbose_name=_("source content"),
        help_text=_("The content whose link, forwarded to this person, brought their follow. Never overwritten."),
    )

    # Preferences, respected by every push.
    topics_opted_out = models.ManyToManyField(
        "content.Topic", related_name="opted_out_subscribers", blank=True, verbose_name=_("opted-out topics")
    )
    topics_preferred = models.ManyToManyField(
        "content.Topic", related_name="preferred_by", blank=True, verbose_name=_("preferred topics")
    )
    max_pushes_per_week = models.PositiveSmallIntegerField(
        _("max pushes per week"), null=True, blank=True, help_text=_("Empty: the account's default.")
    )
    pushes_paused = models.BooleanField(
        _("pushes paused"), default=False, help_text=_("The subscriber asked to stop pushes (for example with TD).")
    )

    # Funnel.
    stage = models.CharField(_("stage"), max_length=16, choices=Stage.choices, default=Stage.FOLLOWED, db_index=True)
    score = models.IntegerField(_("score"), default=0)
    # The first time each stage was reached (campaigns.stages keeps them current, incrementally; never cleared).
    followed_at = models.DateTimeField(
        _("first followed at"), null=True, blank=True, help_text=_("The first follow; later follows keep it.")
    )
    engaged_at = models.DateTimeField(_("engaged at"), null=True, blank=True)
    interactive_at = models.DateTimeField(_("interactive at"), null=True, blank=True)
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    # Microseconds from the previous step to each stage (a stage reached before the previous one counts from the
    # previous one, so never negative; NULL until every step up to it is reached), computed by the database from the
    # columns above on every write (accounts.expressions.StageDelay): the funnel report filters its window and sorts
    # its medians on plain integers.
    engaged_delay_us = models.GeneratedField(
        expression=StageDelay("followed_at", "engaged_at"),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
        verbose_name=_("microseconds from follow to engaged"),
    )
    interactive_delay_us = models.GeneratedField(
        expression=StageDelay("followed_at", "engaged_at", "interactive_at"),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
        verbose_name=_("microseconds from engaged to interactive"),
    )
    converted_delay_us = models.GeneratedField(
        expression=StageDelay("followed_at", "engaged_at", "interactive_at", "converted_at"),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
        verbose_name=_("microseconds from interactive to converted"),
    )
    engaged_content = models.ForeignKey(
        "content.Article",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # covered by subscriber_funnel_idx
        verbose_name=_("engaging content"),
        help_text=_("The content whose tracked link made the subscriber engaged."),
    )
    engaged_push = models.ForeignKey(
        "content.Push",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # covered by subscriber_funnel_idx
        verbose_name=_("engaging push"),
        help_text=_("The push whose tracked link made the subscriber engaged."),
    )
    attributes = models.JSONField(_("attributes"), default=dict, blank=True, help_text=_("Custom attributes."))

    class Meta:
        verbose_name = _("subscriber")
        verbose_name_plural = _("subscribers")
        ordering = ["-id"]
        indexes = [
            # No index may cover last_interaction_at or updated_at: every message updates them, and PostgreSQL can
            # then update the row in place (HOT), without touching any index, on the callback's hot path.
            # The profile fetch's queue: followers whose profile was never fetched or predates their last follow.
            models.Index(
                fields=["id"],
                name="subscriber_profile_pending_idx",
                condition=models.Q(is_following=True)
                & (
                    models.Q(profile_fetched_at__isnull=True)
                    | models.Q(profile_fetched_at__lt=models.F("subscribed_at"))
                ),
            ),
            models.Index(fields=["unionid"], name="subscriber_unionid_idx"),
            # The push report's follows brought by forwards (few rows: a partial index).
            models.Index(
                fields=["source_push"], name="subscriber_source_push_idx", condition=models.Q(source_push__isnull=False)
            ),
            # The funnel report: subscribers by first follow, every stage column inside the index (index-only scans).
            # None of these columns changes on a message, so the callback's updates stay HOT.
            models.Index(
                fields=["followed_at"],
                include=[
                    "engaged_at",
                    "interactive_at",
                    "converted_at",
                    "source_channel",
                    "engaged_content",
                    "engaged_push",
                    "engaged_delay_us",
                    "interactive_delay_us",
                    "converted_delay_us",
                ],
                name="subscriber_funnel_idx",
                condition=models.Q(followed_at__isnull=False),
            ),
        ]
        # Uniqueness as constraints rather than unique=True: Django would add a second, LIKE-only index on
        # PostgreSQL that every insert pays for and no query uses.
        constraints = [models.UniqueConstraint(fields=["openid"], name="subscriber_openid_uniq")]

    def __str__(self) -> str:
        # WeChat no longer gives nicknames: operators set remarks, and the openid is the last resort.
        return self.remark or self.nickname or self.openid


class FollowEvent(models.Model):
    """One follow or unfollow of a subscriber. History: rows are only ever added."""

    class Kind(models.TextChoices):
        FOLLOW = "follow", _("Follow")
        UNFOLLOW = "unfollow", _("Unfollow")

    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=models.CASCADE,
        related_name="follow_events",
        verbose_name=_("subscriber"),
        db_index=False,  # covered by followevent_subscriber_at_idx
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    at = models.DateTimeField(_("at"))
    scene = models.CharField(_("scene"), max_length=128, blank=True, default="")
    interaction = models.OneToOneField(
        "Interaction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="follow_event",
        verbose_name=_("interaction"),
        help_text=_("The subscribe or unsubscribe event this row records."),
    )

    class Meta:
        verbose_name = _("follow event")
        verbose_name_plural = _("follow events")
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["subscriber", "at"], name="followevent_subscriber_at_idx"),
            # The dashboard's follows and unfollows of a day, and the push report's baseline churn.
            models.Index(fields=["at"], name="followevent_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M:%S}"


class Interaction(models.Model):
    """One message or event received on the WeChat callback, stored exactly once (unique `dedupe_key`).

    The row is also the outbox of the follow-up work: `processed_at` stays empty until the Celery task
    `accounts.tasks.interaction_process` has run the follow-ups of its kind (see wechat_crm.wechat.dispatch).
    """

    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="interactions",
        verbose_name=_("subscriber"),
        db_index=False,  # covered by interaction_sub_created_idx
        help_text=_("Empty for system events that no subscriber sent (MASSSENDJOBFINISH)."),
    )
    Kind = InteractionKind

    kind = models.CharField(
        _("kind"),
        max_length=64,
        choices=InteractionKind.choices,
        help_text=_("Lowercase message type or event name (accounts.kinds); kinds WeChat adds later are kept as sent."),
    )
    dedupe_key = models.CharField(_("dedupe key"), max_length=255)  # unique: see Meta.constraints
    msg_id = models.CharField(_("message ID"), max_length=64, blank=True, default="")
    event_key = models.CharField(_("event key"), max_length=2048, blank=True, default="")
    scene = models.CharField(_("scene"), max_length=128, blank=True, default="")
    content = models.TextField(_("content"), blank=True, default="")
    media_id = models.CharField(_("media ID"), max_length=256, blank=True, default="")
    thumb_media_id = models.CharField(_("thumbnail media ID"), max_length=256, blank=True, default="")
    pic_url = models.CharField(_("picture URL"), max_length=2048, blank=True, default="")
    format = models.CharField(_("format"), max_length=32, blank=True, default="")
    title = models.CharField(_("title"), max_length=512, blank=True, default="")
    description = models.TextField(_("description"), blank=True, default="")
    url = models.CharField(_("URL"), max_length=2048, blank=True, default="")
    latitude = models.FloatField(_("latitude"), null=True, blank=True)
    longitude = models.FloatField(_("longitude"), null=True, blank=True)
    precision = models.FloatField(_("precision"), null=True, blank=True)
    scale = models.IntegerField(_("scale"), null=True, blank=True)
    label = models.CharField(_("label"), max_length=512, blank=True, default="")
    ticket = models.CharField(_("QR ticket"), max_length=256, blank=True, default="")
    status = models.CharField(_("status"), max_length=128, blank=True, default="")
    data = models.JSONField(_("data"), default=dict, blank=True, help_text=_("Every field of the message."))
    raw_xml = models.TextField(_("raw XML"), help_text=_("The message as received (decrypted)."))
    reply = models.TextField(_("passive reply"), blank=True, default="success")
    created_at = models.DateTimeField(_("created at"), help_text=_("WeChat's CreateTime."))
    received_at = models.DateTimeField(_("received at"))
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["subscriber", "-created_at"], name="interaction_sub_created_idx"),
            models.Index(fields=["kind", "-created_at"], name="interaction_kind_created_idx"),
            models.Index(fields=["-created_at"], name="interaction_created_idx"),
            models.Index(
                fields=["received_at"],
                name="interaction_pending_idx",
                condition=models.Q(processed_at__isnull=True),
            ),
        ]
        # Exactly once: a copy of a message conflicts here (INSERT ... ON CONFLICT (dedupe_key) DO NOTHING).
        # A constraint, not unique=True, so that PostgreSQL gets no extra LIKE-only index to maintain.
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], name="interaction_dedupe_key_uniq")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class FollowerSync(models.Model):
    """One import of the account's existing followers (pages of WeChat's follower list and their profiles);
    resumable from `next_openid`."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        FAILED = "failed", _("Failed")
        DONE = "done", _("Done")

    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.RUNNING)
    next_openid = models.CharField(
        _("next OpenID"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Where the next page of WeChat's follower list starts."),
    )
    total = models.PositiveIntegerField(_("total followers"), null=True, blank=True)
    imported = models.PositiveIntegerField(_("imported"), default=0)
    created = models.PositiveIntegerField(_("new subscribers"), default=0)
    pages = models.PositiveIntegerField(_("pages"), default=0)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("follower sync")
        verbose_name_plural = _("follower syncs")
        ordering = ["-started_at", "-id"]
        constraints = [
            # At most one unfinished run: a second start resumes it instead of starting over.
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="running"), name="followersync_one_running"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.imported}/{self.total or '?'}"
