from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .models import Interaction, Subscriber, Tag


class SubscriberSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscriber
        fields = [
            "openid",
            "unionid",
            "is_following",
            "subscribed_at",
            "unsubscribed_at",
            "source_scene",
            "last_interaction_at",
            "source_channel",
            "stage",
            "followed_at",
            "engaged_at",
            "interactive_at",
            "converted_at",
        ]
        read_only_fields = fields


class InteractionSerializer(serializers.ModelSerializer):
    openid = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = ["id", "openid", "kind", "event_key", "content", "msg_id", "created_at", "received_at"]
        read_only_fields = fields

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
