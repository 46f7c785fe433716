"""Shapes of the publishing API. Validation at the edge; the services check WeChat's rules."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from content.models import Article

from .models import ArticleWeChat, Draft, MediaAsset, Publication, PushNews


class MediaAssetSerializer(serializers.ModelSerializer):
    file = serializers.ImageField(
        write_only=True, required=True, help_text=_("The image (checked against WeChat's limits).")
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = MediaAsset
        fields = ["id", "kind", "title", "file", "url", "format", "size", "width", "height", "media_id",
                  "wechat_url", "uploaded_at", "from_wechat", "created_at"]  # fmt: skip
        read_only_fields = ["format", "size", "width", "height", "media_id", "wechat_url", "uploaded_at",
                            "from_wechat", "created_at"]  # fmt: skip

    def get_url(self, asset: MediaAsset) -> str:
        from .services.media import absolute_url

        return absolute_url(asset.file.url) if asset.file else ""


class DraftSerializer(serializers.ModelSerializer):
    articles = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Article.objects.all(), help_text=_("1 to 8 article ids, in order.")
    )

    class Meta:
        model = Draft
        fields = ["id", "articles", "push", "status", "media_id", "uploaded_at", "consumed_at", "created_at"]
        read_only_fields = ["push", "status", "media_id", "uploaded_at", "consumed_at", "created_at"]

    def to_representation(self, draft: Draft) -> dict:
        data = super().to_representation(draft)
        data["articles"] = [i.article_id for i in sorted(draft.items.all(), key=lambda i: i.position)]
        return data

    def validate_articles(self, value: list) -> list:
        if not 1 <= len(value) <= 8:
            raise serializers.ValidationError(_("A WeChat draft holds 1 to 8 articles."))
        return value


class PublicationSerializer(serializers.ModelSerializer):
    urls = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text=_("The published articles' URLs, by position.")
    )

    class Meta:
        model = Publication
        fields = ["id", "draft", "publish_id", "status", "wechat_status", "article_id", "urls", "created_at",
                  "finished_at"]  # fmt: skip
        read_only_fields = fields


class ArticleWeChatSerializer(serializers.ModelSerializer):
    class Meta:
        model = ArticleWeChat
        fields = ["cover", "content_source_url", "need_open_comment", "only_fans_can_comment", "wechat_article_id",
                  "wechat_url", "published_at"]  # fmt: skip
        read_only_fields = ["wechat_article_id", "wechat_url", "published_at"]


class PushNewsSerializer(serializers.ModelSerializer):
    more_articles = serializers.PrimaryKeyRelatedField(many=True, queryset=Article.objects.all(), required=False)

    class Meta:
        model = PushNews
        fields = ["more_articles", "send_ignore_reprint", "to_all", "failure"]
        read_only_fields = ["failure"]

    def validate_more_articles(self, value: list) -> list:
        if len(value) > 7:
            raise serializers.ValidationError(_("A news message holds at most 8 articles: up to 7 more."))
        return value


class StatsRangeSerializer(serializers.Serializer):
    begin = serializers.DateField()
    end = serializers.DateField()

    def validate(self, attrs: dict) -> dict:
        if attrs["end"] < attrs["begin"]:
            raise serializers.ValidationError(_("The end comes before the beginning."))
        return attrs


class CompareSerializer(serializers.Serializer):
    days = serializers.ChoiceField(choices=[7, 28], default=7)


class PreviewSerializer(serializers.Serializer):
    wxname = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                   help_text=_("A WeChat ID; empty: your operator profile's openid."))  # fmt: skip
