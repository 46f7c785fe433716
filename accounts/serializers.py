from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from content.models import Topic

from .models import Interaction, Subscriber, Tag


class SubscriberPreferencesSerializer(serializers.Serializer):
    """What the subscriber wants: respected by every push."""

    topics_preferred = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=Topic.objects.all(), required=False, help_text=_("Topic slugs.")
    )
    topics_opted_out = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=Topic.objects.all(), required=False, help_text=_("Topic slugs.")
    )
    max_pushes_per_week = serializers.IntegerField(
        min_value=0, max_value=1000, allow_null=True, required=False, help_text=_("Empty: the account's default.")
    )
    pushes_paused = serializers.BooleanField(required=False)


class SubscriberSerializer(serializers.ModelSerializer):
    display_name = serializers.SerializerMethodField(help_text=_("The remark, else the nickname, else the openid."))
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True, help_text=_("Tag names."))
    attributes = serializers.DictField(read_only=True, help_text=_("Custom attributes (JSON values)."))
    preferences = SubscriberPreferencesSerializer(source="*", read_only=True)

    class Meta:
        model = Subscriber
        fields = [
            "id",
            "openid",
            "unionid",
            "display_name",
            "remark",
            "nickname",
            "is_following",
            "subscribed_at",
            "unsubscribed_at",
            "source_scene",
            "last_interaction_at",
            "source_channel",
            "source_push",
            "source_content",
            "stage",
            "score",
            "followed_at",
            "engaged_at",
            "interactive_at",
            "converted_at",
            "tags",
            "attributes",
            "preferences",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_display_name(self, subscriber: Subscriber) -> str:
        return subscriber.remark or subscriber.nickname or subscriber.openid


class SubscriberUpdateSerializer(serializers.Serializer):
    """PATCH /api/subscribers/<id>/: every field optional; what is sent changes, the rest stays."""

    remark = serializers.CharField(max_length=100, allow_blank=True, required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=30),
        max_length=100,
        required=False,
        help_text=_("The subscriber's whole set of tags, by name (existing tags)."),
    )
    attributes = serializers.DictField(
        required=False, help_text=_("Merged into the custom attributes; a key set to null is removed.")
    )
    preferences = SubscriberPreferencesSerializer(required=False)


class BulkTagSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=[("add", _("add")), ("remove", _("remove"))])
    tag = serializers.CharField(max_length=30, help_text=_("The tag's name."))
    subscribers = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000, help_text=_("Subscriber ids.")
    )
    openids = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=10_000, help_text=_("Or their openids.")
    )


class BulkTagResultSerializer(serializers.Serializer):
    tag = serializers.CharField()
    action = serializers.CharField()
    subscribers = serializers.IntegerField(help_text=_("Subscribers named."))
    changed = serializers.IntegerField(help_text=_("Memberships added or removed (the others were already so)."))


class InteractionSerializer(serializers.ModelSerializer):
    openid = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = ["id", "openid", "kind", "event_key", "content", "msg_id", "created_at", "received_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_openid(self, interaction: Interaction) -> str | None:
        """Empty (null) for system events that no subscriber sent."""
        return interaction.subscriber.openid if interaction.subscriber_id else None


class TagSerializer(serializers.ModelSerializer):
    subscriber_count = serializers.IntegerField(read_only=True, help_text=_("Subscribers with the tag."))

    class Meta:
        model = Tag
        fields = ["id", "name", "wechat_tag_id", "synced_at", "subscriber_count", "created_at"]
        read_only_fields = ["id", "wechat_tag_id", "synced_at", "created_at"]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness is checked by the service, with our message
