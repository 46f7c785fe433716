import django_filters
from django.utils.translation import gettext_lazy as _

from .models import Article, MessageTemplate


class ArticleFilter(django_filters.FilterSet):
    topic = django_filters.CharFilter(field_name="topics__slug", label=_("topic"), help_text=_("A topic's slug."))
    status = django_filters.ChoiceFilter(choices=Article.Status.choices, label=_("status"))

    class Meta:
        model = Article
        fields = ["topic", "status"]


class MessageTemplateFilter(django_filters.FilterSet):
    article = django_filters.NumberFilter(field_name="article_id", label=_("article"))
    wechat_template_id = django_filters.CharFilter(label=_("WeChat template ID"))

    class Meta:
        model = MessageTemplate
        fields = ["article", "wechat_template_id"]
