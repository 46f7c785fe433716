"""Journeys: trigger -> (wait -> condition -> action) steps, who is in them, what each step did; and the topic a
channel is about, which journeys use."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


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
        MESSAGE = (
            "message",
            _(
                "Message (customer-service inside the window, else a subscription notice the person accepted, else a "
                "service template)"
            ),
        )
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
        verbose_name=_("service template (outside the window)"),
    )
    notice_template = models.ForeignKey(
        "content.NoticeTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("subscription notice"),
        help_text=_("Outside the window, before the template: sent only to people who accepted this notice."),
    )
    notice_values = models.JSONField(
        _("notice values"),
        default=dict,
        blank=True,
        help_text=_('A value per keyword of the notice, by WeChat\'s rules: {"thing1": "周年庆", "time2": "15:00"}.'),
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
        from .rules import MARKETING_TEMPLATE_REFUSED, _is_marketing

        if self.template_id and _is_marketing(self.template_id):
            errors["template"] = [MARKETING_TEMPLATE_REFUSED]
        if self.notice_template_id is not None:  # WeChat's value rules, naming the keyword
            from content.errors import NoticeInvalid
            from content.services.notices import notice_values_check

            try:
                self.notice_values = notice_values_check(template=self.notice_template, values=self.notice_values or {})
            except NoticeInvalid as exc:
                errors["notice_values"] = [
                    f"{field.removeprefix('notice_values.')}: {message}"
                    for field, messages in exc.errors.items()
                    for message in messages
                ]
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
