"""REST API of channels (QR codes). Everyone authenticated reads; staff users create (which asks WeChat for the QR
code: 502 with a JSON message when WeChat refuses)."""

import io

from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import generics, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from content.api import IsStaffOrReadOnly
from wechat_crm import exports
from wechat_crm.db import reports_database
from wechat_crm.permissions import WRITE_ADMIN, WRITE_INTEGRATION, WRITE_OPERATOR, RolePermission

from . import attribution_reports, conversions, funnel, selectors, services
from .funnel_serializers import (
    AttributionRowSerializer,
    CampaignSerializer,
    CampaignSummarySerializer,
    ConversionBatchSerializer,
    ConversionInputSerializer,
    ConversionResultSerializer,
    ConversionSerializer,
    ConversionTypeSerializer,
    DropoffParamsSerializer,
    DropoffSubscriberSerializer,
    FunnelParamsSerializer,
    FunnelReportSerializer,
)
from .models import Campaign, Conversion, ConversionType
from .serializers import ChannelSerializer


class ChannelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Channels: WeChat QR codes with a scene; follows and scans through them are attributed to the channel."""

    serializer_class = ChannelSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]

    def get_queryset(self):
        return selectors.channels_list().prefetch_related("tags")

    def perform_create(self, serializer) -> None:
        channel = services.channel_create(**serializer.validated_data)
        serializer.instance = selectors.channels_list().prefetch_related("tags").get(pk=channel.pk)


# --- Campaigns, conversions and the funnel ---
class CampaignViewSet(viewsets.ModelViewSet):
    """Campaigns: their channels bring followers, their pushes engage them. Operators and admins write."""

    serializer_class = CampaignSerializer
    permission_classes = [RolePermission]
    write_roles = WRITE_OPERATOR
    queryset = Campaign.objects.prefetch_related("channels", "pushes")
    filterset_fields = ["channels", "pushes"]

    @extend_schema(responses=CampaignSummarySerializer)
    @action(detail=True, methods=["get"])
    def summary(self, request: Request, pk: str | None = None) -> Response:
        """Follows through its channels in its period, their stages, conversions and revenue."""
        return Response(
            CampaignSummarySerializer(attribution_reports.campaign_summary(campaign=self.get_object())).data
        )


class ConversionTypeViewSet(viewsets.ModelViewSet):
    """Conversion types: register, purchase, download and custom ones. Admins write."""

    serializer_class = ConversionTypeSerializer
    permission_classes = [RolePermission]
    write_roles = WRITE_ADMIN
    queryset = ConversionType.objects.all()
    http_method_names = ["get", "post", "patch", "head", "options"]


CONVERSION_EXAMPLES = [
    OpenApiExample(
        "One purchase",
        request_only=True,
        value={
            "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "type": "purchase",
            "external_id": "order-20260302-0042",
            "value": "199.00",
            "currency": "CNY",
            "occurred_at": "2026-03-02T10:15:00+08:00",
            "attributes": {"sku": "TEA-250G", "store": "Hangzhou West Lake"},
        },
    ),
    OpenApiExample(
        "A batch",
        request_only=True,
        value={
            "events": [
                {
                    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                    "type": "register",
                    "external_id": "user-881",
                    "occurred_at": "2026-03-02T09:00:00+08:00",
                },
                {
                    "unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL",
                    "type": "download",
                    "external_id": "app-5521",
                    "occurred_at": "2026-03-02T09:30:00+08:00",
                },
            ]
        },
    ),
    OpenApiExample(
        "Stored",
        response_only=True,
        status_codes=["201"],
        value={"received": 2, "created": 2, "duplicates": 0, "errors": []},
    ),
    OpenApiExample(
        "One refused",
        response_only=True,
        status_codes=["422"],
        value={
            "message": "1 of 2 events were refused; the others were kept.",
            "received": 2,
            "created": 1,
            "duplicates": 0,
            "errors": [{"index": 1, "message": "No subscriber with this openid or unionid."}],
        },
    ),
]


class ConversionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Conversions. POST one event, or {"events": [...]} with up to 1,000: idempotent on (type, external_id);
    invalid events are reported one by one (422, with their index) and the valid ones are kept. Admins and the
    `integration` role write (give your shop's service account that role: it can do nothing else)."""

    serializer_class = ConversionSerializer
    permission_classes = [RolePermission]
    write_roles = WRITE_INTEGRATION
    queryset = Conversion.objects.select_related("type", "subscriber").order_by("-occurred_at", "-id")
    filterset_fields = ["type__slug", "channel", "push", "content"]

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="ConversionRequest",
            serializers=[ConversionBatchSerializer, ConversionInputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            201: ConversionResultSerializer,
            200: ConversionResultSerializer,
            422: ConversionResultSerializer,
            400: OpenApiResponse(description=_("Not an event, or more than 1,000 events.")),
        },
        examples=CONVERSION_EXAMPLES,
    )
    def create(self, request: Request) -> Response:
        result = conversions.conversions_record_batch(body=request.data)
        code = status.HTTP_422_UNPROCESSABLE_ENTITY if result.errors else (201 if result.created else 200)
        payload = {
            "received": result.received,
            "created": result.created,
            "duplicates": result.duplicates,
            "errors": result.errors,
        }
        if result.errors:
            payload = {
                "message": _("%(n)d of %(total)d events were refused; the others were kept.")
                % {"n": len(result.errors), "total": result.received},
                **payload,
            }
        return Response(payload, status=code)


def _funnel_parameters(serializer_class=FunnelParamsSerializer) -> list[OpenApiParameter]:
    params = []
    for name, field in serializer_class().get_fields().items():
        kind = {
            "DateField": OpenApiTypes.DATE,
            "IntegerField": OpenApiTypes.INT,
        }.get(type(field).__name__, OpenApiTypes.STR)
        enum = list(field.choices) if hasattr(field, "choices") else None
        params.append(OpenApiParameter(name, kind, description=str(field.help_text or ""), enum=enum))
    return params


class FunnelApi(APIView):
    """The funnel from follow to conversion for the followers of a date range: per step the count, conversion from
    the previous and the first step, median time from the previous step and drop-off; with `breakdown`, per group."""

    permission_classes = [RolePermission]
    throttle_scope = "reports"

    @extend_schema(parameters=_funnel_parameters(), responses=FunnelReportSerializer)
    def get(self, request: Request) -> Response:
        params = FunnelParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(FunnelReportSerializer(funnel.funnel_report(query=params.query())).data)


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes | str) else b""


DROPOFF_COLUMNS = DropoffSubscriberSerializer.Meta.fields  # the CSV has the JSON's fields, in the same order


class FunnelDropoffsApi(generics.ListAPIView):
    """Subscribers who reached `step` and not the next one (the list a marketer follows up), paginated; the whole
    list as CSV with ?format=csv or Accept: text/csv."""

    permission_classes = [RolePermission]
    throttle_scope = "reports"
    serializer_class = DropoffSubscriberSerializer
    renderer_classes = [JSONRenderer, CSVRenderer]
    filter_backends: list = []

    def get_queryset(self):
        params = DropoffParamsSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return funnel.funnel_dropoffs(query=params.query(), step=params.validated_data["step"])

    @extend_schema(parameters=_funnel_parameters(DropoffParamsSerializer))
    def get(self, request: Request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return _csv_response(self.get_queryset(), filename="funnel-dropoffs.csv")
        return super().get(request, *args, **kwargs)


def _csv_response(queryset, *, filename: str) -> HttpResponse:
    buffer = io.StringIO()
    writer = exports.writer(buffer)  # neutralises formulas (CSV injection)
    writer.writerow(DROPOFF_COLUMNS)
    with reports_database():  # an export reads the replica when there is one
        for row in DropoffSubscriberSerializer(queryset.iterator(chunk_size=2000), many=True).data:
            writer.writerow(["" if row[c] is None else row[c] for c in DROPOFF_COLUMNS])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class AttributionApi(APIView):
    """Conversions, revenue and conversion rate per first-touch channel, campaign or last-touch content."""

    permission_classes = [RolePermission]
    throttle_scope = "reports"

    @extend_schema(
        parameters=[
            OpenApiParameter("by", OpenApiTypes.STR, enum=["channel", "campaign", "content"], required=True),
            *_funnel_parameters(),
        ],
        responses=AttributionRowSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        params = FunnelParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        rows = attribution_reports.attribution_report(query=params.query(), by=request.query_params.get("by", ""))
        return Response(AttributionRowSerializer(rows, many=True).data)
