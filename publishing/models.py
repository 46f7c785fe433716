"""Publishing on WeChat: the media library, articles' WeChat settings, drafts, publications and WeChat's statistics.

WeChat keeps its own copy of what we publish: images as permanent material (media_id and URL), articles as drafts
(a draft's media_id is what a news push mass-sends), published articles with their permanent URL. The rows here
remember those ids, so that nothing is uploaded twice and a failed send reuses what was already made.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from wechat_crm.models import Authored, Timestamped


class MediaAsset(Authored):
    """An image of the media library, and what WeChat made of it (permanent material or a body-image URL)."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image (cover, ≤ 10 MB)")
        THUMB = "thumb", _("Thumbnail (JPEG, ≤ 64 KB)")
        BODY = "body", _("Image in an article's body (JPEG/PNG, ≤ 1 MB)")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.IMAGE)
    title = models.CharField(_("title"), max_length=200, blank=True, default="")
    file = models.ImageField(_("file"), upload_to="library/%Y/%m/", blank=True, default="")
    format = models.CharField(_("format"), max_length=8, blank=True, default="", editable=False)
    size = models.PositiveIntegerField(_("size (bytes)"), default=0, editable=False)
    width = models.PositiveIntegerField(_("width"), default=0, editable=False)
    height = models.PositiveIntegerField(_("height"), default=0, editable=False)
    media_id = models.CharField(_("WeChat media_id"), max_length=128, blank=True, default="", editable=False)
    wechat_url = models.URLField(_("WeChat URL"), max_length=1024, blank=True, default="", editable=False)
    uploaded_at = models.DateTimeField(_("uploaded to WeChat at"), null=True, blank=True, editable=False)
    from_wechat = models.BooleanField(
        _("found on WeChat"), default=False, editable=False, help_text=_("Listed by the sync with WeChat's material.")
    )

    class Meta:
        verbose_name = _("media")
        verbose_name_plural = _("media library")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["media_id"], condition=~models.Q(media_id=""), name="mediaasset_media_id_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.file.name or self.media_id


class ArticleWeChat(Timestamped):
    """An article's WeChat settings (cover, original-source link, comments) and where WeChat published it."""

    article = models.OneToOneField(
        "content.Article", on_delete=models.CASCADE, related_name="wechat", verbose_name=_("article")
    )
    cover = models.ForeignKey(
        MediaAsset,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("WeChat cover"),
        help_text=_("From the media library; empty: the article's own cover image."),
    )
    content_source_url = models.URLField(_("original-source URL (阅读原文)"), max_length=1024, blank=True, default="")
    need_open_comment = models.BooleanField(_("comments open"), default=False)
    only_fans_can_comment = models.BooleanField(_("only followers may comment"), default=False)
    wechat_article_id = models.CharField(_("WeChat article_id"), max_length=128, blank=True, default="", editable=False)
    wechat_url = models.URLField(_("permanent WeChat URL"), max_length=1024, blank=True, default="", editable=False)
    published_at = models.DateTimeField(_("published on WeChat at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("article's WeChat settings")
        verbose_name_plural = _("articles' WeChat settings")

    def __str__(self) -> str:
        return str(self.article)


class Draft(Timestamped):
    """A draft on WeChat: one article or up to 8 as one multi-article message.

    `fingerprint` is a hash of what was uploaded: an edit with another fingerprint is sent as an update. A
    draft leaves WeChat's draft box once mass-sent or published (`consumed_at`); a later change then makes a new
    one. A draft made for a push belongs to it (`push`) and is reused when the send is tried again.
    """

    class Status(models.TextChoices):
        NEW = "new", _("Not uploaded")
        UPLOADED = "uploaded", _("On WeChat")
        CONSUMED = "consumed", _("Sent or published")
        DELETED = "deleted", _("Deleted")

    articles = models.ManyToManyField(
        "content.Article", through="DraftArticle", related_name="wechat_drafts", verbose_name=_("articles")
    )
    push = models.ForeignKey(
        "content.Push", on_delete=models.CASCADE, null=True, blank=True, related_name="drafts", verbose_name=_("push")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.NEW, editable=False)
    media_id = models.CharField(_("WeChat media_id"), max_length=128, blank=True, default="", editable=False)
    fingerprint = models.CharField(_("fingerprint"), max_length=64, blank=True, default="", editable=False)
    uploaded_at = models.DateTimeField(_("uploaded at"), null=True, blank=True, editable=False)
    consumed_at = models.DateTimeField(_("sent or published at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("WeChat draft")
        verbose_name_plural = _("WeChat drafts")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.media_id or f"#{self.pk}"


class DraftArticle(models.Model):
    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="items", verbose_name=_("draft"))
    article = models.ForeignKey("content.Article", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(_("position"))
    fingerprint = models.CharField(_("fingerprint"), max_length=64, blank=True, default="")

    class Meta:
        verbose_name = _("draft article")
        verbose_name_plural = _("draft articles")
        ordering = ["draft", "position"]
        constraints = [models.UniqueConstraint(fields=["draft", "position"], name="draftarticle_position_uniq")]

    def __str__(self) -> str:
        return f"{self.draft_id}/{self.position}"


class Publication(Authored):
    """One publishing (发布) of a draft, and its result (PUBLISHJOBFINISH, or WeChat's answer when asked)."""

    class Status(models.TextChoices):
        PUBLISHING = "publishing", _("Publishing")
        PUBLISHED = "published", _("Published")
        FAILED = "failed", _("Failed")

    draft = models.ForeignKey(Draft, on_delete=models.PROTECT, related_name="publications", verbose_name=_("draft"))
    publish_id = models.CharField(_("WeChat publish_id"), max_length=64, unique=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PUBLISHING)
    wechat_status = models.IntegerField(_("WeChat publish_status"), null=True, blank=True)
    article_id = models.CharField(_("WeChat article_id"), max_length=128, blank=True, default="")
    urls = models.JSONField(_("article URLs"), default=dict, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("publication")
        verbose_name_plural = _("publications")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.publish_id


class PushNews(models.Model):
    """A news push's options: articles after the push's own (up to 8 in all) and WeChat's reprint rule."""

    push = models.OneToOneField("content.Push", on_delete=models.CASCADE, related_name="news", verbose_name=_("push"))
    more_articles = models.ManyToManyField(
        "content.Article", blank=True, related_name="+", verbose_name=_("more articles (up to 7)")
    )
    send_ignore_reprint = models.BooleanField(
        _("send even if WeChat judges it a reprint"),
        default=False,
        help_text=_("Without it, WeChat stops the send when an article is judged a reprint."),
    )
    to_all = models.BooleanField(
        _("to all followers"), default=False, help_text=_("Send to every follower instead of the segment.")
    )
    failure = models.TextField(_("why it failed"), blank=True, default="", editable=False)

    class Meta:
        verbose_name = _("news options")
        verbose_name_plural = _("news options")

    def __str__(self) -> str:
        return str(self.push)


# --- WeChat's statistics, one row per report line -------------------------------------------------------------


class ArticleDailyStat(models.Model):
    """WeChat's daily and total article reports: one mass-sent article (msgid "<msg_data_id>_<index>") on one day."""

    ref_date = models.DateField(_("date"))
    msgid = models.CharField(_("WeChat msgid"), max_length=64)
    msg_data_id = models.BigIntegerField(_("msg_data_id"), db_index=True)
    index = models.PositiveSmallIntegerField(_("article index"))
    title = models.CharField(_("title"), max_length=200, blank=True, default="")
    read_user = models.PositiveIntegerField(_("readers"), default=0)
    read_count = models.PositiveIntegerField(_("reads"), default=0)
    share_user = models.PositiveIntegerField(_("sharers"), default=0)
    share_count = models.PositiveIntegerField(_("shares"), default=0)
    fav_user = models.PositiveIntegerField(_("favourites"), default=0)
    target_user = models.PositiveIntegerField(_("receivers"), null=True, blank=True)
    read_from_session = models.PositiveIntegerField(_("readers from the chat"), null=True, blank=True)
    read_from_other = models.PositiveIntegerField(_("readers from other sources"), null=True, blank=True)
    data = models.JSONField(_("WeChat's figures"), default=dict, blank=True)

    class Meta:
        verbose_name = _("article statistics (WeChat)")
        verbose_name_plural = _("article statistics (WeChat)")
        ordering = ["-ref_date", "msgid"]
        constraints = [models.UniqueConstraint(fields=["ref_date", "msgid"], name="articlestat_day_msgid_uniq")]

    def __str__(self) -> str:
        return f"{self.ref_date} {self.msgid}"


class AccountDailyStat(models.Model):
    """WeChat's follower, read and share reports: the account's figures of one day, by source.

    `report` says which report; `source` is WeChat's user_source or share_scene ("" for the account's total)."""

    class Report(models.TextChoices):
        FOLLOWERS = "followers", _("Followers (new, cancelled)")
        CUMULATE = "cumulate", _("Cumulative followers")
        READ = "read", _("Reads")
        SHARE = "share", _("Shares")

    ref_date = models.DateField(_("date"))
    report = models.CharField(_("report"), max_length=10, choices=Report.choices)
    source = models.CharField(_("source"), max_length=16, blank=True, default="")
    new_user = models.PositiveIntegerField(_("new followers"), default=0)
    cancel_user = models.PositiveIntegerField(_("cancelled"), default=0)
    cumulate_user = models.PositiveIntegerField(_("cumulative followers"), default=0)
    read_user = models.PositiveIntegerField(_("readers"), default=0)
    read_count = models.PositiveIntegerField(_("reads"), default=0)
    share_user = models.PositiveIntegerField(_("sharers"), default=0)
    share_count = models.PositiveIntegerField(_("shares"), default=0)

    class Meta:
        verbose_name = _("account statistics (WeChat)")
        verbose_name_plural = _("account statistics (WeChat)")
        ordering = ["-ref_date", "report", "source"]
        constraints = [
            models.UniqueConstraint(fields=["ref_date", "report", "source"], name="accountstat_day_report_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.ref_date} {self.report} {self.source}"
