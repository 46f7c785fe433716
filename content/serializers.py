from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Article, MessageTemplate, Push, Segment, Topic
from .services import TEMPLATE_FIELDS


class TopicSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(
        max_length=64, required=False, allow_blank=True, help_text=_("Filled in from the name when left empty.")
    )

    class Meta:
        model = Topic
        fields = ["id", "name", "slug", "description", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_slug(self, value: str) -> str:
        if value and Topic.objects.filter(slug=value).exclude(pk=getattr(self.instance, "pk", None)).exists():
            raise serializers.ValidationError(_("A topic with this slug already exists."))
        return value


class ArticleSerializer(serializers.ModelSerializer):
    topics = serializers.SlugRelatedField(
        slug_field="slug", queryset=Topic.objects.all(), many=True, required=False, help_text=_("Topic slugs.")
    )
    url = serializers.CharField(source="public_url", read_only=True, help_text=_("The public page /c/<slug>/."))
    slug = serializers.SlugField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text=_("The page's address /c/<slug>/. Filled in from the title (or a short id) when left empty."),
    )

    class Meta:
        model = Article
        fields = [
            "id",
            "title",
            "slug",
            "url",
            "digest",
            "body",
            "body_html",
            "cover",
            "topics",
            "author",
            "status",
            "published_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "body_html", "status", "published_at", "created_at", "updated_at"]

    def validate_slug(self, value: str) -> str:
        if value and Article.objects.filter(slug=value).exclude(pk=getattr(self.instance, "pk", None)).exists():
            raise serializers.ValidationError(_("An article with this slug already exists."))
        return value


class TemplateFieldSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=32, help_text=_("WeChat's field name, e.g. first, keyword1, remark."))
    value = serializers.CharField(
        max_length=2000,
        allow_blank=True,
        trim_whitespace=False,
        help_text=_('A Django template rendered per subscriber, e.g. {{ subscriber.remark|default:"朋友" }}.'),
    )
    color = serializers.CharField(max_length=7, required=False, allow_blank=True, default="")


class MessageTemplateSerializer(serializers.ModelSerializer):
    fields = TemplateFieldSerializer(many=True, help_text=_("The template's fields, in order."))
    article = serializers.PrimaryKeyRelatedField(
        queryset=Article.objects.all(), required=False, allow_null=True, help_text=_("Link to this article.")
    )

    class Meta:
        model = MessageTemplate
        fields = ["id", *TEMPLATE_FIELDS, "version", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


SEGMENT_RULE_SCHEMA = {
    "type": "object",
    "description": "A rule {\"type\": ...} or a group {\"op\": \"and\"|\"or\", \"rules\": [...]} (groups nest).",
    "properties": {
        "op": {"type": "string", "enum": ["and", "or"]},
        "rules": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        "type": {
            "type": "string",
            "enum": [
                "tags", "stage", "source_channel", "followed", "last_interaction", "topics_preferred", "attribute",
                "score",
            ],
        },
    },
    "additionalProperties": True,
}  # fmt: skip
SEGMENT_RULES_EXAMPLE = {
    "op": "and",
    "rules": [
        {"type": "tags", "match": "any", "tags": [3, 7]},
        {"type": "stage", "in": ["engaged", "interactive"]},
        {"op": "or", "rules": [
            {"type": "last_interaction", "within_days": 30},
            {"type": "attribute", "key": "city", "op": "eq", "value": "Hangzhou"},
        ]},
        {"type": "score", "gte": 20},
    ],
}  # fmt: skip


@extend_schema_field(SEGMENT_RULE_SCHEMA)
class SegmentRulesField(serializers.JSONField):
    """The segment rule language (content.services.segments): groups of typed rules."""


class SegmentSerializer(serializers.ModelSerializer):
    rules = SegmentRulesField(
        required=False, help_text=_("The rules as JSON data (see the segment rule language in the docs).")
    )
    recipients = serializers.SerializerMethodField(help_text=_("Followers matching the rules now."))

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rules", "recipients", "created_at", "updated_at"]
        read_only_fields = ["id", "recipients", "created_at", "updated_at"]

    @extend_schema_field(OpenApiTypes.INT)
    def get_recipients(self, segment: Segment) -> int:
        from .services.segments import segment_subscribers

        return segment_subscribers(rules=segment.rules).count()

    def validate_rules(self, value):
        from .errors import SegmentInvalid
        from .services.segments import rules_validate

        try:
            return rules_validate(value)
        except SegmentInvalid as exc:
            raise serializers.ValidationError(exc.message) from exc


class PushSerializer(serializers.ModelSerializer):
    notice_values = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=200),
        required=False,
        help_text=_('A subscription notice\'s value per keyword, checked against WeChat\'s rules: {"thing1": "..."}.'),
    )

    class Meta:
        model = Push
        fields = [
            "id",
            "name",
            "channel",
            "article",
            "template",
            "notice_template",
            "notice_values",
            "text",
            "segment",
            "mass_tag",
            "send_at",
            "frequency_cap",
            "ignore_quiet_hours",
            "allow_marketing_template",
            "status",
            "recipients",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "status", "recipients", "started_at", "finished_at", "created_at", "updated_at"]


class PushScheduleSerializer(serializers.Serializer):
    send_at = serializers.DateTimeField(required=False, help_text=_("Default: the push's send_at, or now."))


class PushReportSerializer(serializers.Serializer):
    push = serializers.IntegerField()
    status = serializers.CharField()
    recipients = serializers.IntegerField()
    queued = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skipped_by_reason = serializers.DictField(child=serializers.IntegerField())
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField()
    errors = serializers.IntegerField()
    unknown = serializers.IntegerField()
    reached = serializers.IntegerField(help_text=_("Recipients the message was sent to (sent or delivered)."))
    clicks = serializers.IntegerField()
    unique_clickers = serializers.IntegerField(help_text=_("Everyone who clicked the push's links."))
    reached_clickers = serializers.IntegerField(help_text=_("Of them, the recipients reached."))
    click_through_rate = serializers.FloatField(
        allow_null=True, help_text=_("reached_clickers / reached: the same people on both sides, never above 1.")
    )
    unfollows_24h = serializers.IntegerField()
    unfollows_72h = serializers.IntegerField()
    unfollow_rate_24h = serializers.FloatField(allow_null=True)
    unfollow_rate_72h = serializers.FloatField(allow_null=True)
    baseline_unfollow_rate_24h = serializers.FloatField()
    baseline_unfollow_rate_72h = serializers.FloatField()
    mass_totals = serializers.DictField(allow_null=True)
    forwarded_clicks = serializers.IntegerField(
        help_text=_("Clicks of the push's links by followers it was forwarded to (web authorisation).")
    )
    forwards_to_non_followers = serializers.IntegerField(
        help_text=_("Opens of the push's links by people who did not follow (forwards).")
    )
    follows_from_forwards = serializers.IntegerField(help_text=_("Follows those forwards brought."))
