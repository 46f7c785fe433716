"""The audit log: who did what to which record, and when. Rows are only ever added."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Timestamped(models.Model):
    """When the row was created and last saved (kept by Django)."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class Authored(Timestamped):
    """Timestamped, and the operator who created the row (set by the admin and the API; empty once the user is
    deleted)."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        abstract = True


class AuditLog(models.Model):
    """One audited action (a subscriber's data exported or erased ...). Kept after the target is gone."""

    class Action(models.TextChoices):
        SUBSCRIBER_EXPORT = "subscriber.export", _("Subscriber data exported")
        SUBSCRIBER_ERASE = "subscriber.erase", _("Subscriber erased")

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_logs",
        verbose_name=_("who"),
    )
    actor_username = models.CharField(
        _("username"), max_length=150, blank=True, default="", help_text=_("Kept when the user is deleted.")
    )
    action = models.CharField(_("action"), max_length=64, choices=Action.choices)
    target_type = models.CharField(_("target type"), max_length=100)
    target_id = models.CharField(_("target ID"), max_length=64)
    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    via = models.CharField(_("via"), max_length=16, blank=True, default="", help_text=_("admin, api or command."))
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="auditlog_target_idx")]

    def __str__(self) -> str:
        who = self.actor_username or "-"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.target_type}#{self.target_id}"


def audit(*, actor, action: str, target: models.Model, via: str = "", details: dict | None = None) -> AuditLog:
    """Record one action. `actor` may be None (a command) or an anonymous user."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditLog.objects.create(
        actor=user,
        actor_username=getattr(user, "get_username", lambda: "")() if user else "",
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        via=via,
        details=details or {},
    )
