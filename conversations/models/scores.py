"""The lead score: points per interaction kind, and the points each subscriber earned."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


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
