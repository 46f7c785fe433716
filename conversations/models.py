"""What we say to a subscriber and when: auto-replies, the custom menu, the inbox and its outbound messages,
journeys, notifications for operators and the lead score."""

from __future__ import annotations

import datetime as dt

import regex
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from wechat_crm.models import Timestamped


class AutoReplyRule(Timestamped):
    """A passive reply to a message or event. Rules are tried by priority (highest first, then oldest).

    A follow or scan rule that targets a channel beats that channel's own welcome reply; a follow or scan rule
    without a channel only answers when the channel (if any) has no welcome reply of its own.
    """

    class Trigger(models.TextChoices):
        TEXT_EXACT = "text_exact", _("Text is exactly")
        TEXT_CONTAINS = "text_contains", _("Text contains")
        TEXT_REGEX = "text_regex", _("Text matches the regular expression")
        FOLLOW = "follow", _("Follow")
        SCAN = "scan", _("Scan of a channel's QR code")
        CLICK = "click", _("Menu click (key)")

    class ReplyKind(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        NEWS = "news", _("Article card")
        TEMPLATE = "template", _("Template message (sent after the callback)")

    name = models.CharField(_("name"), max_length=100)
    is_active = models.BooleanField(_("active"), default=True)
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher first."))
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    pattern = models.CharField(
        _("pattern"),
        max_length=500,
        blank=True,
        default="",
        help_text=_("The text, the regular expression or the menu key. Empty for follows and scans."),
    )
    channel = models.ForeignKey(
        "campaigns.Channel",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="auto_reply_rules",
        verbose_name=_("channel"),
        help_text=_("Follows and scans: only through this channel (beats the channel's own welcome reply)."),
    )
    reply_kind = models.CharField(_("reply with"), max_length=16, choices=ReplyKind.choices, default=ReplyKind.TEXT)
    reply_text = models.TextField(_("reply text"), blank=True, default="")
    media_id = models.CharField(_("image media ID"), max_length=256, blank=True, default="")
    article = models.ForeignKey(
        "content.Article", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("article")
    )
    template = models.ForeignKey(
        "content.MessageTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("message template"),
    )
    active_from = models.TimeField(_("active from"), null=True, blank=True, help_text=_("Asia/Shanghai time."))
    active_until = models.TimeField(_("active until"), null=True, blank=True, help_text=_("Asia/Shanghai time."))
    regex_timed_out_at = models.DateTimeField(
        _("expression timed out at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "The last time the regular expression took longer than its time limit on a message: it was skipped for "
            "that message. Simplify the expression; saving a new pattern clears this."
        ),
    )

    class Meta:
        verbose_name = _("auto-reply rule")
        verbose_name_plural = _("auto-reply rules")
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list] = {}
        text_triggers = (self.Trigger.TEXT_EXACT, self.Trigger.TEXT_CONTAINS, self.Trigger.TEXT_REGEX)
        if self.trigger in (*text_triggers, self.Trigger.CLICK) and not self.pattern.strip():
            errors["pattern"] = [_("Give the text, expression or key to match.")]
        if self.trigger == self.Trigger.TEXT_REGEX and self.pattern:
            try:
                regex.compile(self.pattern)
            except regex.error as exc:
                errors["pattern"] = [_("Not a valid regular expression: %(error)s") % {"error": exc}]
        if self.channel_id and self.trigger not in (self.Trigger.FOLLOW, self.Trigger.SCAN):
            errors["channel"] = [_("A channel only applies to follows and scans.")]
        required = {
            self.ReplyKind.TEXT: ("reply_text", _("Give the reply text.")),
            self.ReplyKind.IMAGE: ("media_id", _("Give the image's media ID.")),
            self.ReplyKind.NEWS: ("article", _("Choose the article.")),
            self.ReplyKind.TEMPLATE: ("template", _("Choose the message template.")),
        }
        name, message = required[self.reply_kind]
        if not getattr(self, name if name not in ("article", "template") else f"{name}_id"):
            errors[name] = [message]
        if (self.active_from is None) != (self.active_until is None):
            errors["active_until"] = [_("Give both ends of the active hours, or neither.")]
        if errors:
            raise ValidationError(errors)


class Menu(Timestamped):
    """The account's custom menu as WeChat's JSON ("button": [...]), validated like WeChat does."""

    name = models.CharField(_("name"), max_length=100)
    buttons = models.JSONField(
        _("buttons"),
        default=list,
        help_text=_(
            'WeChat\'s button list, e.g. [{"type": "click", "name": "今日推荐", "key": "TODAY"}, {"name": "菜单", '
            '"sub_button": [{"type": "view", "name": "官网", "url": "https://example.com/"}]}]. At most 3 buttons '
            "with at most 5 sub-buttons each; types click, view and miniprogram."
        ),
    )
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)
    publish_error = models.TextField(_("last publish error"), blank=True, default="", editable=False)

    class Meta:
        verbose_name = _("custom menu")
        verbose_name_plural = _("custom menus")
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .menus import MenuInvalid, menu_validate

        try:
            self.buttons = menu_validate(self.buttons)
        except MenuInvalid as exc:
            raise ValidationError({"buttons": [exc.message]}) from exc


class Conversation(models.Model):
    """A subscriber's thread in the operator inbox: unanswered messages first."""

    subscriber = models.OneToOneField(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="conversation", verbose_name=_("subscriber")
    )
    unanswered = models.PositiveIntegerField(_("unanswered messages"), default=0)
    last_inbound_at = models.DateTimeField(_("last message at"), null=True, blank=True)
    last_outbound_at = models.DateTimeField(_("last reply at"), null=True, blank=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("inbox")
        ordering = ["-unanswered", "-last_inbound_at"]
        indexes = [models.Index(fields=["-unanswered", "-last_inbound_at"], name="conversation_inbox_idx")]

    def __str__(self) -> str:
        return str(self.subscriber)


class OutboundMessage(models.Model):
    """A customer-service or template message we send to one subscriber (operator reply, auto-reply, journey).
    Sent by Celery; the status moves queued -> sending -> sent | failed (with the reason) | unknown (WeChat may have
    received it: a timeout after the request went out, or a worker that died mid-send; never sent again blindly)."""

    class Kind(models.TextChoices):
        CUSTOM = "custom", _("Customer-service message")
        TEMPLATE = "template", _("Template message")

    class Source(models.TextChoices):
        OPERATOR = "operator", _("Operator")
        AUTO_REPLY = "auto_reply", _("Auto-reply")
        JOURNEY = "journey", _("Journey")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Outcome unknown")

    subscriber = models.ForeignKey(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="outbound_messages", verbose_name=_("subscriber")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    text = models.TextField(_("text"), blank=True, default="", help_text=_("What the operator sees in the thread."))
    payload = models.JSONField(_("WeChat payload"), default=dict)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(_("reason"), max_length=255, blank=True, default="")
    errcode = models.IntegerField(_("WeChat errcode"), null=True, blank=True)
    msgid = models.BigIntegerField(_("WeChat msgid"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed for sending at"), null=True, blank=True)
    dedupe_key = models.CharField(_("dedupe key"), max_length=128, null=True, blank=True)  # noqa: DJ001
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("sent by"),
    )
    created_at = models.DateTimeField(_("created at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbound message")
        verbose_name_plural = _("outbound messages")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subscriber", "kind", "created_at"], name="outbound_sub_kind_at_idx")]
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], name="outbound_dedupe_key_uniq")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_status_display()})"


class ChannelTopic(models.Model):
    """The topic a channel is about (a poster about 科技 brings followers interested in 科技): journeys use it."""

    channel = models.OneToOneField(
        "campaigns.Channel", on_delete=models.CASCADE, related_name="conversation_topic", verbose_name=_("channel")
    )
    topic = models.ForeignKey("content.Topic", on_delete=models.CASCADE, related_name="+", verbose_name=_("topic"))

    class Meta:
        verbose_name = _("channel topic")
        verbose_name_plural = _("channel topics")

    def __str__(self) -> str:
        return f"{self.channel} -> {self.topic}"


class Journey(models.Model):
    """trigger -> (wait -> condition -> action) steps. A subscriber enters at most once per period."""

    class Trigger(models.TextChoices):
        FOLLOW = "follow", _("Follow (optionally through a channel)")
        TOPIC_CLICK = "topic_click", _("Click on content of a topic")
        STAGE = "stage", _("Reaching a stage")
        DORMANT = "dormant", _("Dormant: no interaction for N days after having been interactive")
        CONVERSION = "conversion", _("Conversion")

    class Period(models.TextChoices):
        EVER = "ever", _("Once ever")
        YEAR = "year", _("Once a year")
        MONTH = "month", _("Once a month")
        WEEK = "week", _("Once a week")
        DAY = "day", _("Once a day")

    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    channel = models.ForeignKey(
        "campaigns.Channel",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("through channel"),
        help_text=_("Follow: only follows through this channel. Empty: every follow."),
    )
    topic = models.ForeignKey(
        "content.Topic",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("topic"),
        help_text=_("Click on content of a topic: the topic."),
    )
    stage = models.CharField(
        _("stage"), max_length=16, blank=True, default="", help_text=_("Reaching a stage: the stage.")
    )
    dormant_days = models.PositiveIntegerField(
        _("dormant after (days)"), null=True, blank=True, help_text=_("Dormant: days without any interaction.")
    )
    period = models.CharField(
        _("enter at most"),
        max_length=8,
        choices=Period.choices,
        default=Period.EVER,
        help_text=_("Dormant journeys: once per quiet spell, whatever this says."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from accounts.models import Subscriber

        errors: dict[str, list] = {}
        if self.trigger == self.Trigger.TOPIC_CLICK and not self.topic_id:
            errors["topic"] = [_("Choose the topic.")]
        if self.trigger == self.Trigger.STAGE and self.stage not in Subscriber.Stage.values:
            errors["stage"] = [_("One of: %(stages)s.") % {"stages": ", ".join(Subscriber.Stage.values)}]
        if self.trigger == self.Trigger.DORMANT and not self.dormant_days:
            errors["dormant_days"] = [_("Give the number of days.")]
        if self.channel_id and self.trigger != self.Trigger.FOLLOW:
            errors["channel"] = [_("A channel only applies to the follow trigger.")]
        if errors:
            raise ValidationError(errors)


class JourneyStep(models.Model):
    """Wait, then check the condition, then act. A failed condition skips the step (or stops the journey)."""

    class Condition(models.TextChoices):
        NONE = "", _("Always")
        HAS_TAG = "has_tag", _("Has the tag")
        NOT_TAG = "not_tag", _("Does not have the tag")
        STAGE_IN = "stage_in", _("Stage is one of (comma-separated)")
        PREFERS_TOPIC = "prefers_topic", _("Prefers the topic / has not opted out of it")
        PUSHES_ACTIVE = "pushes_active", _("Has not paused pushes")
        IN_WINDOW = "in_window", _("Inside the 48-hour window")
        SCORE_AT_LEAST = "score_gte", _("Score at least")
        NOT_CONVERTED = "not_converted", _("Has not converted")

    class OnFail(models.TextChoices):
        SKIP = "skip", _("Skip this step")
        STOP = "stop", _("Stop the journey")

    class Action(models.TextChoices):
        MESSAGE = "message", _("Message (customer-service inside the window, template outside)")
        ADD_TAG = "add_tag", _("Add the tag")
        REMOVE_TAG = "remove_tag", _("Remove the tag")
        SCORE = "score", _("Change the score")
        NOTIFY = "notify", _("Notify an operator")

    class Content(models.TextChoices):
        NONE = "", _("Only the text")
        ARTICLE = "article", _("The chosen article")
        TOPIC_BEST = "topic_best", _("The best articles of the subscriber's topic")

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="steps", verbose_name=_("journey"))
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    wait = models.DurationField(
        _("wait"),
        default=dt.timedelta(0),
        help_text=_("After the previous step (or entering), e.g. 2 days: '2 00:00:00'."),
    )
    condition = models.CharField(_("condition"), max_length=16, choices=Condition.choices, blank=True, default="")
    condition_tag = models.ForeignKey(
        "accounts.Tag", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("tag")
    )
    condition_topic = models.ForeignKey(
        "content.Topic", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("topic")
    )
    condition_value = models.CharField(_("value"), max_length=100, blank=True, default="")
    on_fail = models.CharField(_("when the condition fails"), max_length=8, choices=OnFail.choices, default="skip")
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    text = models.TextField(
        _("text"),
        blank=True,
        default="",
        help_text=_("Message or notification text. {nickname} and {topic} are replaced."),
    )
    content = models.CharField(_("content"), max_length=16, choices=Content.choices, blank=True, default="")
    article = models.ForeignKey(
        "content.Article", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("article")
    )
    template = models.ForeignKey(
        "content.MessageTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("template (outside the window)"),
    )
    tag = models.ForeignKey(
        "accounts.Tag", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("tag")
    )
    score_delta = models.IntegerField(_("score change"), default=0)

    class Meta:
        verbose_name = _("journey step")
        verbose_name_plural = _("journey steps")
        ordering = ["journey", "position", "id"]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_action_display()}"

    def clean(self) -> None:
        errors: dict[str, list] = {}
        if self.condition in ("has_tag", "not_tag") and not self.condition_tag_id:
            errors["condition_tag"] = [_("Choose the tag.")]
        if self.condition == "prefers_topic" and not self.condition_topic_id:
            errors["condition_topic"] = [_("Choose the topic.")]
        if self.condition == "score_gte":
            try:
                int(self.condition_value)
            except ValueError:
                errors["condition_value"] = [_("A whole number.")]
        if self.action in ("add_tag", "remove_tag") and not self.tag_id:
            errors["tag"] = [_("Choose the tag.")]
        if self.action in ("message", "notify") and not self.text.strip() and not self.content:
            errors["text"] = [_("Give the text.")]
        if self.content == "article" and not self.article_id:
            errors["article"] = [_("Choose the article.")]
        if errors:
            raise ValidationError(errors)


class JourneyEnrollment(models.Model):
    """One subscriber's pass through a journey. `due_at` is when the next step runs (stored: survives restarts)."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        COMPLETED = "completed", _("Completed")
        STOPPED = "stopped", _("Stopped")

    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="enrollments", verbose_name=_("journey")
    )
    subscriber = models.ForeignKey(
        "accounts.Subscriber",
        on_delete=models.CASCADE,
        related_name="journey_enrollments",
        verbose_name=_("subscriber"),
    )
    period_key = models.CharField(_("period"), max_length=64)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    next_position = models.IntegerField(_("next step"), default=0)
    due_at = models.DateTimeField(_("next step due at"), null=True, blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True)
    entered_at = models.DateTimeField(_("entered at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("journey enrollment")
        verbose_name_plural = _("journey enrollments")
        ordering = ["-entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "subscriber", "period_key"], name="enrollment_once_per_period")
        ]
        indexes = [
            models.Index(fields=["due_at"], name="enrollment_due_idx", condition=models.Q(status="active")),
            models.Index(fields=["subscriber", "status"], name="enrollment_subscriber_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.journey_id}/{self.subscriber_id} {self.period_key}"


class JourneyStepRun(models.Model):
    """A step executed for an enrollment: recorded under a unique constraint with its action (never twice)."""

    class Outcome(models.TextChoices):
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Skipped (condition)")
        STOPPED = "stopped", _("Stopped the journey (condition)")
        FAILED = "failed", _("Failed")

    enrollment = models.ForeignKey(
        JourneyEnrollment, on_delete=models.CASCADE, related_name="runs", verbose_name=_("enrollment")
    )
    step = models.ForeignKey(JourneyStep, on_delete=models.CASCADE, related_name="runs", verbose_name=_("step"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    detail = models.CharField(_("detail"), max_length=255, blank=True, default="")
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("journey step run")
        verbose_name_plural = _("journey step runs")
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["enrollment", "step"], name="steprun_once")]

    def __str__(self) -> str:
        return f"{self.step} {self.get_outcome_display()}"


class Notification(models.Model):
    """Something an operator should look at (a journey's "notify an operator" action)."""

    subscriber = models.ForeignKey(
        "accounts.Subscriber",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("subscriber"),
    )
    journey = models.ForeignKey(
        Journey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("journey")
    )
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created at"))
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.text[:60]


class ScoreRule(models.Model):
    """Points a subscriber earns per interaction of a kind (text, click, view, link_click, subscribe, ...)."""

    kind = models.CharField(_("interaction kind"), max_length=64, unique=True)
    points = models.IntegerField(_("points"))

    class Meta:
        verbose_name = _("score rule")
        verbose_name_plural = _("score rules")
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.points:+d}"


class ScoreEntry(models.Model):
    """Points earned (or lost) at a moment. The subscriber's score is the sum, each entry halved every
    SCORE_HALF_LIFE_DAYS (recomputed by a daily beat task; a new entry adds its full points at once)."""

    subscriber = models.ForeignKey(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="score_entries", verbose_name=_("subscriber")
    )
    points = models.IntegerField(_("points"))
    reason = models.CharField(_("reason"), max_length=100)
    interaction = models.OneToOneField(
        "accounts.Interaction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="score_entry",
        verbose_name=_("interaction"),
    )
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("score entry")
        verbose_name_plural = _("score entries")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subscriber", "at"], name="scoreentry_subscriber_at_idx")]

    def __str__(self) -> str:
        return f"{self.points:+d} {self.reason}"
