from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.admin_saving import adopt_saved
from wechat_crm.exceptions import ApplicationError

from . import qr, selectors, services
from .models import Channel


class ChannelAdminForm(forms.ModelForm):
    """Creating a channel asks WeChat for its QR code while the form is validated: a refusal is a form error."""

    class Meta:
        model = Channel
        fields = ["name", "scene_str", "kind", "expire_seconds", "tags", "welcome_reply", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qrcode: services.QRCode | None = None

    def clean_scene_str(self) -> str:
        # The model's checks run after clean(); WeChat must not be asked for a scene we would refuse anyway.
        value = self.cleaned_data["scene_str"]
        Channel._meta.get_field("scene_str").run_validators(value)
        if Channel.objects.filter(scene_str=value).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("A channel with this scene exists already."))
        return value

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None or self.errors:
            return cleaned
        kind = cleaned.get("kind")
        if kind == Channel.Kind.PERMANENT:
            cleaned["expire_seconds"] = None
        elif not cleaned.get("expire_seconds"):
            self.add_error("expire_seconds", _("A temporary QR code needs an expiry."))
            return cleaned
        try:
            self.qrcode = services.channel_qrcode_request(
                scene_str=cleaned["scene_str"], kind=kind, expire_seconds=cleaned.get("expire_seconds")
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        return cleaned


CREATE_FIELDS = ("name", "scene_str", "kind", "expire_seconds", "welcome_reply", "is_active")


@admin.register(Channel)
class ChannelAdmin(ModelAdmin):
    form = ChannelAdminForm
    list_display = ["name", "scene_str", "kind", "is_active", "follow_count", "first_touch_count", "expires_at"]
    list_filter = ["kind", "is_active", ("expires_at", RangeDateTimeFilter), ("created_at", RangeDateTimeFilter)]
    list_filter_submit = True
    search_fields = ["name", "scene_str"]
    filter_horizontal = ["tags"]
    readonly_fields = [
        "qr_preview",
        "follow_count",
        "first_touch_count",
        "recent_touches",
        "ticket",
        "url",
        "expires_at",
        "created_at",
    ]
    RECENT_TOUCHES = 20
    actions = ["renew_qrcodes"]

    def get_queryset(self, request: HttpRequest):
        return selectors.channels_list()

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:  # a QR code's scene and kind cannot change once WeChat made it
            fields += ["scene_str", "kind", "expire_seconds"]
        return fields

    def get_fieldsets(self, request: HttpRequest, obj=None):
        main = ["name", "scene_str", "kind", "expire_seconds", "tags", "welcome_reply", "is_active"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": main}),
            (_("QR code"), {"fields": ["qr_preview", "ticket", "url", "expires_at"]}),
            (_("Results"), {"fields": ["follow_count", "first_touch_count", "recent_touches", "created_at"]}),
        ]

    def save_model(self, request: HttpRequest, obj: Channel, form: ChannelAdminForm, change: bool) -> None:
        """A new channel goes through channel_create, as in the API, with the QR code the form obtained."""
        if change:
            super().save_model(request, obj, form, change)
            return
        data = {name: form.cleaned_data[name] for name in CREATE_FIELDS if name in form.cleaned_data}
        channel = services.channel_create(**data, tags=list(form.cleaned_data.get("tags") or []), qrcode=form.qrcode)
        adopt_saved(obj, channel)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)
            return
        for formset in formsets:  # the tags were set by channel_create
            self.save_formset(request, form, formset, change=change)

    @admin.action(description=_("Renew the QR codes of the selected temporary channels"), permissions=["change"])
    def renew_qrcodes(self, request: HttpRequest, queryset) -> None:
        renewed = 0
        for channel in queryset:
            try:
                services.channel_renew_qrcode(channel=channel)
                renewed += 1
            except ApplicationError as exc:
                self.message_user(request, f"{channel.name}: {exc.message}", messages.ERROR)
        if renewed:
            self.message_user(request, _("%(count)d QR codes renewed.") % {"count": renewed}, messages.SUCCESS)

    @admin.display(description=_("follows"), ordering="follow_count")
    def follow_count(self, obj: Channel) -> int:
        return getattr(obj, "follow_count", 0)

    @admin.display(description=_("first-touch subscribers"), ordering="first_touch_count")
    def first_touch_count(self, obj: Channel) -> int:
        return getattr(obj, "first_touch_count", 0)

    @admin.display(description=_("recent touches"))
    def recent_touches(self, obj: Channel) -> str:
        touches = obj.touches.select_related("subscriber").order_by("-at", "-id")[: self.RECENT_TOUCHES]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((t.at.strftime("%Y-%m-%d %H:%M"), t.get_kind_display(), t.subscriber) for t in touches),
        )
        return format_html("<table>{}</table>", rows) if rows else "-"

    @admin.display(description=_("QR code"))
    def qr_preview(self, obj: Channel) -> str:
        if not obj.url:
            return "-"
        return format_html(
            '<img src="{}" alt="{}" width="200" height="200" style="image-rendering: pixelated"><br>'
            '<a class="button" href="{}" download>{}</a> <a class="button" href="{}" download>{}</a>',
            qr.qr_svg_data_uri(obj.url),
            _("QR code of %(name)s") % {"name": obj.name},
            reverse("admin:campaigns_channel_qr", args=[obj.pk, "png"]),
            _("Download PNG"),
            reverse("admin:campaigns_channel_qr", args=[obj.pk, "svg"]),
            _("Download SVG"),
        )

    def get_urls(self):
        return [
            path(
                "<int:object_id>/qr.<str:fmt>",
                self.admin_site.admin_view(self.qr_download_view),
                name="campaigns_channel_qr",
            ),
            *super().get_urls(),
        ]

    def qr_download_view(self, request: HttpRequest, object_id: int, fmt: str) -> HttpResponse:
        channel = get_object_or_404(Channel, pk=object_id)
        if not self.has_view_permission(request, channel):
            raise PermissionDenied
        if not channel.url or fmt not in ("png", "svg"):
            raise Http404
        if fmt == "png":
            response = HttpResponse(qr.qr_png(channel.url), content_type="image/png")
        else:
            response = HttpResponse(qr.qr_svg(channel.url), content_type="image/svg+xml")
        response["Content-Disposition"] = f'attachment; filename="channel-{channel.scene_str}.{fmt}"'
        return response


from . import admin_reports  # noqa: E402,F401  (registers the funnel's admin pages)
