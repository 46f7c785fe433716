"""The content library: topics, articles (served at /c/<slug>/), WeChat message templates and tracked links."""

from django.conf import settings
from django.core.validators import FileExtensionValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from wechat_crm.models import Authored

from ..rendering import markdown_render
from ..validators import validate_cover_size

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
            from ..slugs import slug_unique

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
            from ..slugs import slug_unique

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

        from ..errors import TemplateInvalid
        from ..templating import fields_check

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
