from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.admin import ModelAdmin

from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.admin_saving import adopt_saved

from . import selectors, services, templating
from .admin_fields import PrettyJSONField
from .errors import ArticleStatusError, TemplateInvalid
from .models import Article, MessageTemplate, Topic


@admin.register(Topic)
class TopicAdmin(ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at", "push_quality"]

    @admin.display(description=_("pushes of this topic"))
    def push_quality(self, topic: Topic) -> str:
        if not topic.pk:
            return "-"
        [r] = selectors.topic_report(topic_id=topic.pk)

        def pct(x):
            return "-" if x is None else f"{x * 100:.2f}%"

        rows = [
            (_("pushes"), r["pushes"]),
            (_("recipients"), r["recipients"]),
            (_("sent"), r["sent"]),
            (_("clicks (unique)"), f"{r['clicks']} ({r['unique_clickers']})"),
            (_("click-through rate"), pct(r["click_through_rate"])),
            (_("unfollows within 24 h"), _("%(count)s = %(rate)s (baseline %(baseline)s)")
             % {"count": r["unfollows_24h"], "rate": pct(r["unfollow_rate_24h"]),
                "baseline": pct(r["baseline_unfollow_rate_24h"])}),
            (_("unfollows within 72 h"), r["unfollows_72h"]),
        ]  # fmt: skip
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))


class ArticleAdminForm(forms.ModelForm):
    class Meta:
        model = Article
        fields = ["title", "slug", "digest", "author", "topics", "cover", "body"]
        widgets = {
            "body": forms.Textarea(
                attrs={
                    "rows": 28,
                    "class": "vLargeTextField",
                    "style": "font-family: ui-monospace, Menlo, Consolas, monospace; width: 90%;",
                    "placeholder": _("# Heading\n\nWrite **Markdown** here. Save, then open the preview."),
                }
            ),
        }


@admin.register(Article)
class ArticleAdmin(ModelAdmin):
    form = ArticleAdminForm
    list_display = ["title", "status", "published_at", "topic_names", "author", "updated_at", "page_link"]
    list_filter = ["status", "topics", ("published_at", RangeDateTimeFilter), ("updated_at", RangeDateTimeFilter)]
    list_filter_submit = True
    search_fields = ["title", "slug", "digest"]
    date_hierarchy = "created_at"
    filter_horizontal = ["topics"]
    readonly_fields = ["status", "published_at", "page_link", "created_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["title", "slug", "digest", "author", "topics", "cover"]}),
        (_("Body"), {"fields": ["body", "page_link"]}),
        (_("Status"), {"fields": ["status", "published_at", "created_by", "created_at", "updated_at"]}),
    ]
    actions = ["publish_selected", "unpublish_selected"]
    change_form_template = "content/admin/article_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Article]:
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description=_("topics"))
    def topic_names(self, article: Article) -> str:
        return ", ".join(t.name for t in article.topics.all())

    @admin.display(description=_("page"))
    def page_link(self, article: Article) -> str:
        if not article.pk:
            return "-"
        label = _("Open page") if article.is_published else _("Preview (staff only)")
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', article.get_absolute_url(), label)

    def save_model(self, request: HttpRequest, obj: Article, form, change: bool) -> None:
        """Through article_create / article_update, as the API does (the slug is derived, the body rendered)."""
        data = {name: getattr(obj, name) for name in services.ARTICLE_FIELDS}  # the form's values, files included
        if change:
            changed = {name: data[name] for name in form.changed_data if name in services.ARTICLE_FIELDS}
            if "topics" in form.changed_data:
                changed["topics"] = form.cleaned_data["topics"]
            services.article_update(article=obj, data=changed)
        else:
            article = services.article_create(**data, topics=form.cleaned_data.get("topics", ()), by=request.user)
            adopt_saved(obj, article)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        for formset in formsets:  # the topics were set by the service
            self.save_formset(request, form, formset, change=change)

    def _status_button(self, request: HttpRequest, article: Article) -> HttpResponse | None:
        """ "Save and publish" / "Save and unpublish": the article is saved; now change its status via the service."""
        if "_publish" in request.POST:
            to = Article.Status.PUBLISHED
        elif "_unpublish" in request.POST:
            to = Article.Status.DRAFT
        else:
            return None
        try:
            services.article_set_status(article=article, to=to)
        except ArticleStatusError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
        else:
            done = _("Published.") if to == Article.Status.PUBLISHED else _("Unpublished: the page answers 404 again.")
            self.message_user(request, done, level=messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:content_article_change", args=[article.pk]))

    def response_add(self, request: HttpRequest, obj: Article, post_url_continue=None) -> HttpResponse:
        return self._status_button(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Article) -> HttpResponse:
        return self._status_button(request, obj) or super().response_change(request, obj)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Article], to: str) -> None:
        done = 0
        for article in queryset:
            try:
                services.article_set_status(article=article, to=to)
                done += 1
            except ArticleStatusError as exc:
                self.message_user(request, exc.message, level=messages.WARNING)
        if done:
            self.message_user(
                request,
                ngettext("%(count)d article changed.", "%(count)d articles changed.", done) % {"count": done},
                level=messages.SUCCESS,
            )

    @admin.action(description=_("Publish the selected articles"), permissions=["change"])
    def publish_selected(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        self._set_status(request, queryset, Article.Status.PUBLISHED)

    @admin.action(description=_("Unpublish the selected articles (back to draft)"), permissions=["change"])
    def unpublish_selected(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        self._set_status(request, queryset, Article.Status.DRAFT)


class MessageTemplateAdminForm(forms.ModelForm):
    fields = PrettyJSONField(
        label=_("fields"),
        widget=forms.Textarea(attrs={"rows": 14, "style": "font-family: ui-monospace, monospace; width: 90%;"}),
        help_text=MessageTemplate._meta.get_field("fields").help_text,
    )
    link_url = forms.URLField(
        label=_("link URL"),
        required=False,
        max_length=1024,
        assume_scheme="https",
        help_text=MessageTemplate._meta.get_field("link_url").help_text,
    )

    class Meta:
        model = MessageTemplate
        fields = list(services.TEMPLATE_FIELDS)  # what template_create / template_update accept


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ModelAdmin):
    form = MessageTemplateAdminForm
    list_display = ["title", "purpose", "wechat_template_id", "article", "link_url", "version", "updated_at"]
    list_filter = ["purpose"]
    search_fields = ["title", "wechat_template_id"]
    list_select_related = ["article"]
    autocomplete_fields = ["article"]
    readonly_fields = ["variables_help", "sample_rendering", "version", "created_by", "created_at", "updated_at"]

    def get_fields(self, request: HttpRequest, obj: MessageTemplate | None = None) -> list[str]:
        return [*MessageTemplateAdminForm.Meta.fields, *self.readonly_fields]

    @admin.display(description=_("variables"))
    def variables_help(self, template: MessageTemplate | None) -> str:
        return format_html(
            "{}<br><code>{}</code>",
            _("Values may use these variables, any built-in filter and the tags if, with, firstof, now, comment:"),
            ", ".join(f"{root}.{f}" for root, fs in templating.CONTEXT_SCHEMA.items() for f in fs),
        )

    @admin.display(description=_("sample rendering"))
    def sample_rendering(self, template: MessageTemplate | None) -> str:
        if template is None or not template.pk:
            return "-"
        try:
            data = services.template_render(template, subscriber=templating.SAMPLE_CONTEXT["subscriber"])
        except TemplateInvalid as exc:
            return exc.message
        return format_html(
            "<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", ((k, v["value"]) for k, v in data.items()))
        )

    def save_model(self, request: HttpRequest, obj: MessageTemplate, form, change: bool) -> None:
        services.template_save(template=obj, by=request.user)


# Registers the sending pages (policy, segments, pushes, deliveries) and subscription notices (templates, consents).
from . import admin_sending, notice_admin  # noqa: E402,F401
