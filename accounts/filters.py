import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .models import Interaction, Subscriber


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """true / false (or 1 / 0); anything else is a 400 naming the parameter, not silently no filter."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [("true", "true"), ("false", "false"), ("1", "1"), ("0", "0")])
        kwargs.setdefault("coerce", lambda value: value in ("true", "1", True))
        super().__init__(*args, **kwargs)


class SubscriberFilter(django_filters.FilterSet):
    openid = django_filters.CharFilter(label=_("OpenID"))
    is_following = StrictBooleanFilter(label=_("following"))
    tag = django_filters.CharFilter(field_name="tags__name", label=_("tag"), help_text=_("A tag's name."))
    stage = django_filters.ChoiceFilter(choices=Subscriber.Stage.choices, label=_("stage"))
    channel = django_filters.NumberFilter(field_name="source_channel_id", label=_("source channel (ID)"))
    followed_from = django_filters.DateFilter(
        field_name="followed_at", lookup_expr="date__gte", label=_("followed from")
    )
    followed_to = django_filters.DateFilter(
        field_name="followed_at", lookup_expr="date__lte", label=_("followed until")
    )
    following = StrictBooleanFilter(field_name="is_following", label=_("following"))
    score_min = django_filters.NumberFilter(field_name="score", lookup_expr="gte", label=_("score at least"))
    score_max = django_filters.NumberFilter(field_name="score", lookup_expr="lte", label=_("score at most"))
    q = django_filters.CharFilter(
        method="search", label=_("search"), help_text=_("Exact openid, or part of the remark or nickname.")
    )

    class Meta:
        model = Subscriber
        fields = [
            "openid",
            "is_following",
            "following",
            "tag",
            "stage",
            "channel",
            "followed_from",
            "followed_to",
            "score_min",
            "score_max",
            "q",
        ]

    def search(self, queryset, name: str, value: str):
        term = value.strip()
        if not term:
            return queryset
        return queryset.filter(Q(openid=term) | Q(remark__icontains=term) | Q(nickname__icontains=term))


class InteractionFilter(django_filters.FilterSet):
    openid = django_filters.CharFilter(field_name="subscriber__openid", label=_("OpenID"))
    kind = django_filters.CharFilter(label=_("kind"), help_text=_("Lowercase message type or event name."))

    class Meta:
        model = Interaction
        fields = ["openid", "kind"]
