"""Passive replies: the auto-reply rules, and the custom menu whose clicks they answer."""

from __future__ import annotations

import regex
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
        if self.reply_kind == self.ReplyKind.TEMPLATE and _is_marketing(self.template_id):
            errors["template"] = [MARKETING_TEMPLATE_REFUSED]
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
        from ..menus import MenuInvalid, menu_validate

        try:
            self.buttons = menu_validate(self.buttons)
        except MenuInvalid as exc:
            raise ValidationError({"buttons": [exc.message]}) from exc


MARKETING_TEMPLATE_REFUSED = _(
    "A marketing template cannot be sent as a template message here: WeChat reserves template messages for service "
    "notices (the send policy would skip it). Choose a service template, or use a subscription notice."
)


def _is_marketing(template_id: int | None) -> bool:
    """Whether the message template is for marketing (conversations.policy refuses it outside a push's override)."""
    if template_id is None:
        return False
    from content.models import MessageTemplate

    return MessageTemplate.objects.filter(pk=template_id, purpose=MessageTemplate.Purpose.MARKETING).exists()
