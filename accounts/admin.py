from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RangeNumericFilter, RelatedDropdownFilter

from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.admin_lists import QuickCheckboxMixin
from wechat_crm.exceptions import ApplicationError
from wechat_crm.paginators import EstimatedCountPaginator
from wechat_crm.timeline import subscriber_timeline

from . import selectors
from .models import FollowerSync, Interaction, Subscriber, Tag
from .privacy_admin import erase_personal_data, export_personal_data
from .subscribers import attributes_merged, subscriber_update


def _enqueue(task, request: HttpRequest, admin_obj: admin.ModelAdmin, done: str, **kwargs) -> None:
    """Start a long WeChat job in Celery (queue `reports`) and say so."""
    try:
        task.apply_async(kwargs=kwargs, queue="reports", retry=False)
    except Exception as exc:  # the broker is down: tell the operator instead of a 500
        admin_obj.message_user(request, _("Could not start the job: %(error)s") % {"error": exc}, messages.ERROR)
        return
    admin_obj.message_user(request, done, messages.SUCCESS)


@admin.action(description=_("Import all followers from WeChat (resumes an unfinished import)"), permissions=["import"])
def start_follower_sync(admin_obj: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    from .tasks import follower_sync_task

    _enqueue(follower_sync_task, request, admin_obj, _("The follower import runs in the background."))


class FollowerImportMixin:
    """Who may start the follower import (the action `start_follower_sync`): whoever may change subscribers."""

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_subscriber")


class ReadOnlyAdminMixin:
    """Rows written only by the callback: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class SubscriberAdminForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ["remark", "tags", "topics_preferred", "topics_opted_out", "max_pushes_per_week", "pushes_paused",
                  "attributes"]  # fmt: skip

    def clean_attributes(self):
        """The limits subscriber_update enforces (keys, size), as a form error."""
        new = self.cleaned_data.get("attributes") or {}
        if not isinstance(new, dict):
            raise ValidationError(_("The attributes must be a JSON object."))
        current = self.instance.attributes or {}
        try:
            attributes_merged(current, {**{key: None for key in current if key not in new}, **new})
        except ApplicationError as exc:
            raise ValidationError(exc.message) from exc
        return new


@admin.register(Subscriber)
class SubscriberAdmin(QuickCheckboxMixin, FollowerImportMixin, ModelAdmin):
    form = SubscriberAdminForm
    list_display = ["name", "openid", "is_following", "stage", "score", "subscribed_at", "source_channel",
                    "last_interaction_at"]  # fmt: skip
    list_display_links = ["name", "openid"]
    list_select_related = ["source_channel"]
    list_filter = [
        "is_following",
        "stage",
        ("source_channel", RelatedDropdownFilter),
        "tags",
        ("subscribed_at", RangeDateTimeFilter),
        ("last_interaction_at", RangeDateTimeFilter),
        ("score", RangeNumericFilter),
        "pushes_paused",
    ]
    list_filter_submit = True
    search_fields = ["openid", "unionid", "remark", "nickname"]  # see get_search_results
    search_help_text = _("Exact OpenID or UnionID, or part of the remark or nickname.")
    # No date_hierarchy: its years are a DISTINCT over the whole table (0.5 s at 1M rows); the date filters stay.
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # no count of the whole table (wechat_crm/paginators.py)
    actions = [start_follower_sync, "refetch_profiles", export_personal_data, erase_personal_data]
    autocomplete_fields = ["tags", "topics_preferred", "topics_opted_out"]
    # What WeChat and the product write; operators edit only the tags and preferences.
    _record_fields = [
        "openid",
        "unionid",
        "is_following",
        "subscribed_at",
        "unsubscribed_at",
        "source_scene",
        "source_channel",
        "source_push",
        "source_content",
        "last_interaction_at",
        "nickname",
        "remark",
        "language",
        "sex",
        "city",
        "province",
        "country",
        "headimgurl",
        "subscribe_scene",
        "qr_scene_str",
        "profile_fetched_at",
        "stage",
        "score",
        "created_at",
        "updated_at",
    ]
    _editable_fields = [
        "remark",
        "tags",
        "topics_preferred",
        "topics_opted_out",
        "max_pushes_per_week",
        "pushes_paused",
        "attributes",
    ]
    _record_fields.remove("remark")  # operators set it (WeChat gives no nicknames any more)
    fieldsets = [
        (_("Remark, tags and preferences"), {"fields": _editable_fields}),
        (_("Timeline"), {"fields": ["timeline"]}),
        (_("Subscription notices"), {"fields": ["notice_consents"]}),
        (_("Record"), {"fields": _record_fields, "classes": ["collapse"]}),
    ]
    readonly_fields = [*_record_fields, "timeline", "notice_consents"]
    change_form_template = "admin/accounts/subscriber/change_form.html"

    @admin.display(description=_("timeline"))
    def timeline(self, obj: Subscriber) -> str:
        if obj.pk is None:
            return "-"
        # unfold may render a read-only field more than once: compute the timeline once per page.
        if getattr(obj, "_timeline", None) is None:
            obj._timeline = subscriber_timeline(subscriber=obj)
        events = obj._timeline
        if not events:
            return _("Nothing yet.")
        return render_to_string("admin/accounts/subscriber/timeline.html", {"events": events})

    @admin.display(description=_("consents"))
    def notice_consents(self, obj: Subscriber) -> str:
        """Each subscription-notice template the person decided about (WeChat's popup and change events), with
        their last decisions."""
        from content.models import NoticeConsent, NoticeConsentChange, NoticeTemplate

        if obj.pk is None:
            return "-"
        consents = list(NoticeConsent.objects.filter(subscriber_id=obj.pk).order_by("-changed_at")[:50])
        if not consents:
            return _("No decision about subscription notices yet.")
        titles = dict(NoticeTemplate.objects.filter(template_id__in=[c.template_id for c in consents])
                      .values_list("template_id", "title"))  # fmt: skip
        changes = NoticeConsentChange.objects.filter(subscriber_id=obj.pk).order_by("-at")[:20]
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((titles.get(c.template_id, c.template_id), _("accepted") if c.accepted else _("not accepted"),
              c.credits, localize(timezone.localtime(c.changed_at))) for c in consents),
        )  # fmt: skip
        history = format_html_join(
            "", "<li>{} · {} · {}</li>",
            ((localize(timezone.localtime(h.at)), titles.get(h.template_id, h.template_id), h.get_decision_display())
             for h in changes),
        )  # fmt: skip
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>{}</table><ul>{}</ul>",
            _("template"), _("consent"), _("notices allowed"), _("changed at"), rows, history,
        )  # fmt: skip

    def save_model(self, request: HttpRequest, obj: Subscriber, form, change: bool) -> None:
        """Through subscriber_update, as the API does: the changed fields only (the tags by name, the attributes
        replaced as a whole: keys removed in the form are removed)."""
        data = form.cleaned_data
        changed = set(form.changed_data)
        kwargs = {}
        if "remark" in changed:
            kwargs["remark"] = data["remark"]
        if "tags" in changed:
            kwargs["tags"] = [t.name for t in data["tags"]]
        if "attributes" in changed:
            current = Subscriber.objects.get(pk=obj.pk).attributes or {}
            new = data["attributes"] or {}
            kwargs["attributes"] = {**{key: None for key in current if key not in new}, **new}
        for name in ("topics_preferred", "topics_opted_out"):
            if name in changed:
                kwargs[name] = list(data[name])
        if "max_pushes_per_week" in changed:
            kwargs["max_pushes_per_week"] = data["max_pushes_per_week"]
        if "pushes_paused" in changed:
            kwargs["pushes_paused"] = data["pushes_paused"]
        subscriber_update(subscriber=obj, **kwargs)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        pass  # the tags and topics were saved by subscriber_update

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # subscribers come from WeChat

    @admin.display(description=_("name"), ordering="remark")
    def name(self, obj: Subscriber) -> str:
        return str(obj)  # the remark, the nickname, or the openid

    @admin.action(description=_("Fetch the selected subscribers' profiles from WeChat again"), permissions=["change"])
    def refetch_profiles(self, request: HttpRequest, queryset: QuerySet) -> None:
        from .profiles import profile_fetch_schedule

        count = queryset.filter(is_following=True).update(profile_fetched_at=None)
        profile_fetch_schedule(delay=0)
        self.message_user(request, _("%(count)d profiles will be fetched.") % {"count": count}, messages.SUCCESS)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return (
            queryset.filter(Q(openid=term) | Q(unionid=term) | Q(remark__icontains=term) | Q(nickname__icontains=term)),
            False,
        )


@admin.register(Interaction)
class InteractionAdmin(QuickCheckboxMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "kind", "subscriber_name", "event_key", "short_content", "created_at", "received_at"]
    list_filter = ["kind", ("created_at", RangeDateTimeFilter), ("received_at", RangeDateTimeFilter)]
    list_filter_submit = True
    list_select_related = ["subscriber"]
    search_fields = ["subscriber__openid", "msg_id"]  # see get_search_results
    search_help_text = _("Exact OpenID or message ID.")
    # No date_hierarchy: its years are a DISTINCT over the whole table (13 s at 10M rows); the date filters stay.
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # no count of the whole table (wechat_crm/paginators.py)
    list_per_page = 50

    @admin.display(description=_("subscriber"), ordering="subscriber__openid")
    def subscriber_name(self, obj: Interaction) -> str:
        return str(obj.subscriber) if obj.subscriber_id else ""

    @admin.display(description=_("content"))
    def short_content(self, obj: Interaction) -> str:
        return obj.content if len(obj.content) <= 60 else obj.content[:59] + "…"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        # Exact matches on indexed columns: a substring search over every interaction would scan the table.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(subscriber__openid=term) | Q(dedupe_key=f"msg:{term}")), False


@admin.register(Tag)
class TagAdmin(ModelAdmin):
    list_display = ["name", "subscriber_count", "wechat_tag_id", "synced_at", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["wechat_tag_id", "synced_at", "created_at"]
    actions = ["sync_with_wechat", "pull_from_wechat", "push_to_wechat"]

    def get_queryset(self, request: HttpRequest):
        return selectors.tags_list()

    @admin.display(description=_("subscribers"), ordering="subscriber_count")
    def subscriber_count(self, obj: Tag) -> int:
        return getattr(obj, "subscriber_count", 0)

    def _sync(self, request: HttpRequest, direction: str) -> None:
        from .tasks import tags_sync_task

        _enqueue(
            tags_sync_task, request, self, _("The tag sync with WeChat runs in the background."), direction=direction
        )

    @admin.action(description=_("Sync all tags with WeChat (pull, then push)"), permissions=["change"])
    def sync_with_wechat(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._sync(request, "both")

    @admin.action(description=_("Pull all tags and members from WeChat"), permissions=["change"])
    def pull_from_wechat(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._sync(request, "pull")

    @admin.action(description=_("Push all tags and members to WeChat"), permissions=["change"])
    def push_to_wechat(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._sync(request, "push")


@admin.register(FollowerSync)
class FollowerSyncAdmin(FollowerImportMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["started_at", "status", "imported", "total", "created", "pages", "finished_at", "error"]
    list_filter = ["status", ("started_at", RangeDateTimeFilter)]
    list_filter_submit = True
    actions = [start_follower_sync]
