"""Serializers of campaigns, conversions and the funnel reports (the API's and the OpenAPI schema's types)."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Subscriber
from content.models import Push

from . import funnel
from .models import CONVERSION_BATCH_MAX, Campaign, Channel, Conversion, ConversionType


class CampaignSerializer(serializers.ModelSerializer):
    channels = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.all(), many=True, required=False, help_text=_("IDs of the campaign's channels.")
    )
    pushes = serializers.PrimaryKeyRelatedField(
        queryset=Push.objects.all(), many=True, required=False, help_text=_("IDs of the campaign's pushes.")
    )

    class Meta:
        model = Campaign
        fields = ["id", "name", "goal", "starts_on", "ends_on", "channels", "pushes", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs):
        starts = attrs.get("starts_on", getattr(self.instance, "starts_on", None))
        ends = attrs.get("ends_on", getattr(self.instance, "ends_on", None))
        if starts and ends and ends < starts:
            raise serializers.ValidationError({"ends_on": _("The campaign cannot end before it starts.")})
        return attrs


class CampaignStagesSerializer(serializers.Serializer):
    followed = serializers.IntegerField()
    engaged = serializers.IntegerField()
    interactive = serializers.IntegerField()
    converted = serializers.IntegerField()


class CampaignSummarySerializer(serializers.Serializer):
    follows = serializers.IntegerField(help_text=_("Follows through the campaign's channels in its period."))
    stages = CampaignStagesSerializer(help_text=_("Those followers by current stage."))
    conversions = serializers.IntegerField(help_text=_("Conversions attributed to its channels or pushes."))
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)


class ConversionTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConversionType
        fields = ["id", "slug", "name", "is_active"]


class ConversionSerializer(serializers.ModelSerializer):
    type = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    openid = serializers.CharField(source="subscriber.openid", read_only=True)
    attributes = serializers.DictField(read_only=True, help_text=_("What the sending system attached (JSON values)."))

    class Meta:
        model = Conversion
        fields = [
            "id",
            "type",
            "openid",
            "external_id",
            "value",
            "currency",
            "occurred_at",
            "attributes",
            "channel",
            "push",
            "content",
            "created_at",
        ]
        read_only_fields = fields


class ConversionInputSerializer(serializers.Serializer):
    """One conversion event. The subscriber is named by openid, or failing that unionid, or failing that the `ref`
    our tracked link gave the shop (`wxref` on the destination URL)."""

    openid = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    unionid = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    ref = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("The `wxref` our link added to your page's address: a signed reference to the person that "
                    "expires (SHOP_REF_MAX_AGE_DAYS)."),
    )  # fmt: skip
    type = serializers.SlugField(max_length=50, help_text=_("register, purchase, download or a custom type's code."))
    external_id = serializers.CharField(max_length=128, help_text=_("Your ID of the event: sent twice, stored once."))
    value = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, default=0, min_value=0)
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, default="CNY", help_text=_("ISO 4217, e.g. CNY."))
    occurred_at = serializers.DateTimeField()
    attributes = serializers.DictField(required=False, default=dict)

    def validate_ref(self, value: str) -> str:
        from accounts.webauth import RefInvalid, ref_read

        if value:
            try:
                ref_read(value)
            except RefInvalid as exc:
                raise serializers.ValidationError(exc.message) from None
        return value

    def validate(self, attrs):
        if not attrs.get("openid") and not attrs.get("unionid") and not attrs.get("ref"):
            raise serializers.ValidationError(_("Give the subscriber's openid, unionid or ref."))
        return attrs


class ConversionBatchSerializer(serializers.Serializer):
    """The body of POST /api/conversions/: one event, or {"events": [...]} with up to 1,000."""

    events = ConversionInputSerializer(many=True, help_text=_("Up to %d events.") % CONVERSION_BATCH_MAX)


class ConversionItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=_("Position of the event in the batch (0 for a single event)."))
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ConversionResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text=_("Events already stored (same type and external_id)."))
    errors = ConversionItemErrorSerializer(many=True)


class FunnelParamsSerializer(serializers.Serializer):
    # `from` is a Python keyword: declared through the fields mapping below.
    to = serializers.DateField(required=False, help_text=_("Last follow date (inclusive). Default: today."))
    window_days = serializers.IntegerField(
        required=False, min_value=1, max_value=3650, help_text=_("Conversion window after the follow, in days.")
    )
    breakdown = serializers.ChoiceField(choices=funnel.BREAKDOWNS, required=False)
    channel = serializers.IntegerField(required=False, help_text=_("Only followers whose first touch is this channel."))
    campaign = serializers.IntegerField(required=False, help_text=_("Only followers through this campaign's channels."))
    tag = serializers.CharField(required=False, help_text=_("Only subscribers with this tag (name)."))

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField(required=False, help_text=_("First follow date. Default: 29 days ago."))
        return fields

    def query(self) -> funnel.FunnelQuery:
        data = self.validated_data
        return funnel.funnel_query(
            start=data.get("from"),
            end=data.get("to"),
            window_days=data.get("window_days"),
            breakdown=data.get("breakdown"),
            channel_id=data.get("channel"),
            campaign_id=data.get("campaign"),
            tag=data.get("tag"),
        )


class DropoffParamsSerializer(FunnelParamsSerializer):
    step = serializers.ChoiceField(choices=["followed", "engaged", "interactive"])


class FunnelStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()
    conversion_from_previous = serializers.FloatField()
    conversion_from_first = serializers.FloatField()
    median_seconds_from_previous = serializers.FloatField(allow_null=True)
    dropoff = serializers.IntegerField(allow_null=True, help_text=_("Reached this step, not the next."))


class FunnelGroupSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    label = serializers.CharField()
    steps = FunnelStepSerializer(many=True)


class FunnelReportSerializer(serializers.Serializer):
    to = serializers.DateField()
    window_days = serializers.IntegerField()
    breakdown = serializers.CharField(allow_null=True)
    steps = FunnelStepSerializer(many=True)
    groups = FunnelGroupSerializer(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        return fields


class DropoffSubscriberSerializer(serializers.ModelSerializer):
    source_channel = serializers.CharField(source="source_channel.name", allow_null=True, default=None)

    class Meta:
        model = Subscriber
        fields = [
            "id",
            "openid",
            "nickname",
            "stage",
            "followed_at",
            "engaged_at",
            "interactive_at",
            "converted_at",
            "source_channel",
            "is_following",
        ]
        read_only_fields = fields


class AttributionRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    label = serializers.CharField()
    conversions = serializers.IntegerField(help_text=_("Conversions in the period credited to this group."))
    subscribers = serializers.IntegerField(help_text=_("Distinct subscribers behind those conversions."))
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    base = serializers.IntegerField(
        help_text=_("Members: subscribers who first followed in the period through this channel or campaign (content: "
                    "whose first engagement was this content).")
    )  # fmt: skip
    converted = serializers.IntegerField(help_text=_("Members who converted within the window after their follow."))
    conversion_rate = serializers.FloatField(
        allow_null=True, help_text=_("converted / base: the same people on both sides, never above 1.")
    )
