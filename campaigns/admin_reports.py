"""Admin pages of the funnel (marketers read them; nothing here changes data): campaigns, conversion types,
conversions, the funnel settings, and the report page with the funnel chart, the weekly cohort chart and the channel
table, filterable by date range, channel and campaign, with CSV download."""

from __future__ import annotations

import io
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RangeDateFilter, RangeNumericFilter

from wechat_crm import exports
from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.exceptions import ApplicationError

from . import attribution_reports, funnel
from .models import Campaign, Channel, Conversion, ConversionType, FunnelReport, FunnelSettings


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    list_display = ["name", "starts_on", "ends_on", "created_at"]
    list_filter = [("starts_on", RangeDateFilter), ("ends_on", RangeDateFilter)]
    list_filter_submit = True
    search_fields = ["name"]
    filter_horizontal = ["channels", "pushes"]
    readonly_fields = ["summary"]
    fields = ["name", "goal", "starts_on", "ends_on", "channels", "pushes", "summary"]

    @admin.display(description=_("results"))
    def summary(self, campaign: Campaign) -> str:
        if campaign.pk is None:
            return "-"
        data = attribution_reports.campaign_summary(campaign=campaign)
        stages = ", ".join(f"{funnel.STEP_LABELS[k]}: {v}" for k, v in data["stages"].items())
        return format_html(
            '<span class="campaign-summary">{}: <b class="follows">{}</b> ({}) · {}: <b class="conversions">{}</b>'
            ' · {}: <b class="revenue">{}</b></span>',
            _("Follows"),
            data["follows"],
            stages,
            _("Conversions"),
            data["conversions"],
            _("Revenue"),
            data["revenue"],
        )


@admin.register(ConversionType)
class ConversionTypeAdmin(ModelAdmin):
    list_display = ["slug", "name", "is_active"]


@admin.register(Conversion)
class ConversionAdmin(ModelAdmin):
    list_display = ["type", "external_id", "subscriber", "value", "currency", "occurred_at", "channel", "push"]
    list_filter = ["type", "channel", ("occurred_at", RangeDateTimeFilter), ("value", RangeNumericFilter)]
    list_filter_submit = True
    search_fields = ["external_id", "subscriber__openid", "subscriber__remark", "subscriber__nickname"]
    list_select_related = ["type", "subscriber", "channel", "push"]
    raw_id_fields = ["subscriber", "channel", "push", "content"]
    date_hierarchy = "occurred_at"


@admin.register(FunnelSettings)
class FunnelSettingsAdmin(ModelAdmin):
    """One row: the stage rules. Changing them applies to events from now on (stages already reached stay)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not FunnelSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FunnelFilterForm(forms.Form):
    start = forms.DateField(label=_("Followed from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    window_days = forms.IntegerField(label=_("Window (days)"), required=False, min_value=1, max_value=3650)
    channel = forms.ModelChoiceField(label=_("Channel"), queryset=Channel.objects.all(), required=False)
    campaign = forms.ModelChoiceField(label=_("Campaign"), queryset=Campaign.objects.all(), required=False)


@admin.register(FunnelReport)
class FunnelReportAdmin(ModelAdmin):
    """The report page, at the model's list address. Needs only the view permission."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = FunnelFilterForm(request.GET or None)
        context: dict[str, Any] = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta}
        context["title"] = _("Funnel report")
        if form.is_bound and not form.is_valid():
            return TemplateResponse(request, "admin/campaigns/funnel_report.html", context)
        data = form.cleaned_data if form.is_bound else {}
        try:
            query = funnel.funnel_query(
                start=data.get("start"),
                end=data.get("end"),
                window_days=data.get("window_days"),
                channel_id=data["channel"].pk if data.get("channel") else None,
                campaign_id=data["campaign"].pk if data.get("campaign") else None,
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            return TemplateResponse(request, "admin/campaigns/funnel_report.html", context)
        overall = funnel.funnel_report(query=query)
        by_channel = funnel.funnel_report(query=_with_breakdown(query, "channel"))
        cohorts = funnel.funnel_report(query=_with_breakdown(query, "cohort_week"))
        revenue = {str(r["key"]): r for r in attribution_reports.attribution_report(query=query, by="channel")}
        channel_rows = []
        for group in by_channel["groups"]:
            money = revenue.get(str(group["key"]) if group["key"] is not None else "None", {})
            channel_rows.append(
                {
                    "label": group["label"],
                    "counts": [s["count"] for s in group["steps"]],
                    "rate": group["steps"][-1]["conversion_from_first"],
                    "conversions": money.get("conversions", 0),
                    "revenue": money.get("revenue", 0),
                }
            )
        if request.GET.get("format") == "csv":
            return _csv(overall, channel_rows, cohorts)
        query_string = request.GET.copy()
        query_string["format"] = "csv"
        context.update(
            {
                "query": query,
                "overall": overall,
                "channel_rows": channel_rows,
                "step_labels": [s["label"] for s in overall["steps"]],
                "chart_data": {
                    "steps": [{"label": s["label"], "count": s["count"]} for s in overall["steps"]],
                    "cohorts": [
                        {"label": g["label"], "counts": [s["count"] for s in g["steps"]]}
                        for g in sorted(cohorts["groups"], key=lambda g: g["label"])
                    ],
                    "series": [s["label"] for s in overall["steps"]],
                },
                "csv_url": f"{reverse('admin:campaigns_funnelreport_changelist')}?{query_string.urlencode()}",
            }
        )
        return TemplateResponse(request, "admin/campaigns/funnel_report.html", context)


def _with_breakdown(query: funnel.FunnelQuery, breakdown: str) -> funnel.FunnelQuery:
    return funnel.FunnelQuery(
        query.start, query.end, query.window_days, breakdown, query.channel_id, query.campaign_id, query.tag
    )


def _csv(overall: dict, channel_rows: list[dict], cohorts: dict) -> HttpResponse:
    buffer = io.StringIO()
    writer = exports.writer(buffer)  # neutralises formulas (CSV injection)
    writer.writerow(
        [
            "section",
            "group",
            "step",
            "count",
            "conversion_from_previous",
            "conversion_from_first",
            "median_seconds_from_previous",
            "dropoff",
        ]
    )
    for section, rows in (("funnel", [{"label": "", "steps": overall["steps"]}]), ("cohort_week", cohorts["groups"])):
        for group in rows:
            for s in group["steps"]:
                writer.writerow(
                    [
                        section,
                        group["label"],
                        s["step"],
                        s["count"],
                        s["conversion_from_previous"],
                        s["conversion_from_first"],
                        s["median_seconds_from_previous"] or "",
                        s["dropoff"] or "",
                    ]
                )
    writer.writerow([])
    writer.writerow(
        ["channel", "followed", "engaged", "interactive", "converted", "conversion_rate", "conversions", "revenue"]
    )
    for row in channel_rows:
        writer.writerow([row["label"], *row["counts"], row["rate"], row["conversions"], row["revenue"]])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="funnel-report.csv"'
    return response
