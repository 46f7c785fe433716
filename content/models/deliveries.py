"""What became of a push: one delivery per recipient, mass-send batches, and the push's counters."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .sending import Push


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

    push = models.ForeignKey(
        Push,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("push"),
        db_index=False,  # covered by delivery_one_per_push_subscriber and delivery_push_status_id_idx
    )
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
            # A page's claim reads its id range of the push's queued rows (id in the index: only those entries).
            models.Index(fields=["push", "status", "id"], name="delivery_push_status_id_idx"),
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
