import django_filters
from django.utils.translation import gettext_lazy as _

from .models import Interaction, Subscriber


class SubscriberFilter(django_filters.FilterSet):
    openid = django_filters.CharFilter(label=_("OpenID"))
    is_following = django_filters.BooleanFilter(label=_("following"))
    tag = django_filters.CharFilter(field_name="tags__name", label=_("tag"), help_text=_("A tag's name."))
    stage = django_filters.ChoiceFilter(choices=Subscriber.Stage.choices, label=_("stage"))
    channel = django_filters.NumberFilter(field_name="source_channel_id", label=_("source channel (ID)"))
    followed_from = django_filters.DateFilter(
        field_name="followed_at", lookup_expr="date__gte", label=_("followed from")
    )
    followed_to = django_filters.DateFilter(
        field_name="followed_at", lookup_expr="date__lte", label=_("followed until")
    )

    class Meta:
        model = Subscriber
        fields = ["openid", "is_following", "tag", "stage", "channel", "followed_from", "followed_to"]


class InteractionFilter(django_filters.FilterSet):
    openid = django_filters.CharFilter(field_name="subscriber__openid", label=_("OpenID"))
    kind = django_filters.CharFilter(label=_("kind"), help_text=_("Lowercase message type or event name."))

    class Meta:
        model = Interaction
        fields = ["openid", "kind"]
