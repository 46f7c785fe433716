"""The operator inbox: a thread per subscriber, the messages we send one subscriber, and notifications for
operators."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .journeys import Journey


class Conversation(models.Model):
    """A subscriber's thread in the operator inbox: unanswered messages first."""

    subscriber = models.OneToOneField(
        "accounts.Subscriber", on_delete=models.CASCADE, related_name="conversation", verbose_name=_("subscriber")
    )
    unanswered = models.PositiveIntegerField(_("unanswered messages"), default=0)
    last_inbound_at = models.DateTimeField(_("last message at"), null=True, blank=True)
    last_outbound_at = models.DateTimeField(_("last reply at"), null=True, blank=True)
    waiting_since = models.DateTimeField(
        _("waiting since"),
        null=True,
        blank=True,
        help_text=_("The subscriber's first unanswered message since our last reply; empty when nothing waits."),
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        verbose_name=_("assigned to"),
        help_text=_("The operator who answers this subscriber."),
    )

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("inbox")
        ordering = ["-unanswered", "-last_inbound_at"]
        indexes = [
            models.Index(fields=["-unanswered", "-last_inbound_at"], name="conversation_inbox_idx"),
            # The dashboard's "waiting longest" and its count of waiting conversations. The id breaks ties in the
            # index itself: with only waiting_since, conversations waiting since the same instant were all read and
            # sorted to find the first (100,000 of them, each joined to its subscriber: 390 ms at 1M subscribers).
            models.Index(
                fields=["waiting_since", "id"], name="conversation_waiting_idx2", condition=Q(unanswered__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return str(self.subscriber)


class OutboundMessage(models.Model):
    """A customer-service or template message we send to one subscriber (operator reply, auto-reply, journey).
    Sent by Celery; the status moves queued -> sending -> sent | failed (with the reason) | unknown (WeChat may have
    received it: a timeout after the request went out, or a worker that died mid-send; never sent again blindly)."""

    class Kind(models.TextChoices):
        CUSTOM = "custom", _("Customer-service message")
        TEMPLATE = "template", _("Template message")
        NOTICE = "notice", _("Subscription notice")

    class Source(models.TextChoices):
        OPERATOR = "operator", _("Operator")
        AUTO_REPLY = "auto_reply", _("Auto-reply")
        JOURNEY = "journey", _("Journey")
        CONFIRMATION = "confirmation", _("Confirmation of the person's change (preferences page)")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped by the send policy")
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
    skip_reason = models.CharField(
        _("send policy"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Why the send policy kept the message back (skipped) or deferred it (conversations.policy)."),
    )
    not_before = models.DateTimeField(
        _("not before"), null=True, blank=True, help_text=_("Deferred by the send policy (quiet hours) until then.")
    )
    template = models.ForeignKey(
        "content.MessageTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("template"),
        help_text=_("The template a template message was rendered from (its purpose is checked again at sending)."),
    )
    notice_template = models.ForeignKey(
        "content.NoticeTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("notice template"),
        help_text=_("A subscription notice's template (the person's consent is checked again at sending)."),
    )
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


class QuickReply(models.Model):
    """A ready-made answer operators insert into a reply with one click (then edit if they like)."""

    title = models.CharField(_("title"), max_length=60)
    text = models.TextField(_("text"))
    position = models.PositiveSmallIntegerField(_("position"), default=0, help_text=_("Lower first."))

    class Meta:
        verbose_name = _("quick reply")
        verbose_name_plural = _("quick replies")
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.title


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
