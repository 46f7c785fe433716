from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Tag

from .models import Channel


class ChannelSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Tag.objects.all(),
        many=True,
        required=False,
        help_text=_("Names of the tags applied to subscribers attributed to the channel."),
    )
    follow_count = serializers.IntegerField(read_only=True, help_text=_("Follows through the channel."))
    first_touch_count = serializers.IntegerField(
        read_only=True, help_text=_("Subscribers whose first follow came through the channel.")
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "scene_str",
            "kind",
            "expire_seconds",
            "expires_at",
            "ticket",
            "url",
            "tags",
            "welcome_reply",
            "is_active",
            "follow_count",
            "first_touch_count",
            "created_at",
        ]
        read_only_fields = ["id", "expires_at", "ticket", "url", "created_at"]

    def validate(self, attrs):
        if attrs.get("kind") == Channel.Kind.TEMPORARY and not attrs.get("expire_seconds"):
            raise serializers.ValidationError({"expire_seconds": _("A temporary QR code needs an expiry.")})
        return attrs
