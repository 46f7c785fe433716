"""factory_boy factories of the content app (and the subscribers its tests need)."""

import factory
from django.contrib.auth import get_user_model

from accounts.models import Subscriber
from content.models import Article, MessageTemplate, Topic


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    openid = factory.Sequence(lambda n: f"oTEST{n:06d}xyzOpenIdSecret")
    is_following = True
    nickname = factory.Sequence(lambda n: f"粉丝{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")
    is_staff = False


class MarketerFactory(UserFactory):
    """A user in the marketer role: reads everything, writes nothing (a user in no role reads nothing)."""

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        from django.contrib.auth.models import Group

        if create:
            self.groups.add(Group.objects.get(name="marketer"))


class StaffFactory(UserFactory):
    is_staff = True
    is_superuser = True


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic

    name = factory.Sequence(lambda n: f"Topic {n}")


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Article

    title = factory.Sequence(lambda n: f"Article {n}")
    body = "# Hello\n\nSome **valuable** content."
    digest = "A digest"
    author = "Editor"


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    title = factory.Sequence(lambda n: f"Template {n}")
    wechat_template_id = "TPL_abc123"
    fields = factory.LazyFunction(
        lambda: [
            {"key": "first", "value": '{{ subscriber.remark|default:"朋友" }}，你好', "color": "#173177"},
            {"key": "keyword1", "value": "{{ article.title }}", "color": ""},
        ]
    )
