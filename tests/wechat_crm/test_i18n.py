"""The product speaks Simplified Chinese by default and English on request: the admin, API errors and the passive
replies it writes to subscribers. The committed catalogue is complete (no empty or fuzzy entry) and its committed
.mo matches it, so a machine without gettext serves the same translations."""

from __future__ import annotations

import gettext
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import Subscriber
from conversations.replies import PreferenceCommand, preference_apply
from tests.fixtures.wechat_payloads import AES_KEY, CallbackPoster, build_message
from wechat_crm.wechat import xml

LOCALE_DIR = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
PO_PATH = LOCALE_DIR / "django.po"
MO_PATH = LOCALE_DIR / "django.mo"
OPENID = "oI18n_000000000000000000001"


@pytest.fixture(autouse=True)
def product_default_language(settings):
    """The test settings use English (the source language); here the product's own default applies."""
    from wechat_crm.settings import base

    settings.LANGUAGE_CODE = base.LANGUAGE_CODE
    assert settings.LANGUAGE_CODE == "zh-hans"


def _entries() -> list[polib.POEntry]:
    return [e for e in polib.pofile(str(PO_PATH)) if not e.obsolete]


@pytest.fixture
def superuser_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="yunying", password="pw", email="y@example.com")
    client.force_login(user)
    return client


# --- The admin -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_login_page_is_chinese_by_default_and_english_on_request(client):
    chinese = client.get("/admin/login/").content.decode()
    assert 'lang="zh-hans"' in chinese and "登录" in chinese

    english = client.get("/admin/login/", headers={"accept-language": "en"}).content.decode()
    assert 'lang="en"' in english and "Log in" in english and "登录" not in english


@pytest.mark.django_db
def test_the_subscribers_changelist_is_chinese_by_default(superuser_client):
    Subscriber.objects.create(openid=OPENID, nickname="小王")

    page = superuser_client.get("/admin/accounts/subscriber/").content.decode()

    assert 'lang="zh-hans"' in page
    assert "粉丝" in page  # the app's and the model's names
    assert "已关注" in page or "活跃互动" in page  # the funnel stages in the stage filter
    assert "Subscribers" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["accept-language", "cookie"])
def test_the_subscribers_changelist_is_english_with_the_header_or_the_language_cookie(superuser_client, how):
    Subscriber.objects.create(openid=OPENID, nickname="小王")
    if how == "cookie":
        superuser_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
        response = superuser_client.get("/admin/accounts/subscriber/")
    else:
        response = superuser_client.get("/admin/accounts/subscriber/", headers={"accept-language": "en"})

    page = response.content.decode()
    assert 'lang="en"' in page
    assert "Subscribers" in page and "Interactive" in page
    assert "粉丝" not in page and "活跃互动" not in page


@pytest.mark.django_db
def test_the_index_names_every_app_in_chinese(superuser_client):
    page = superuser_client.get("/admin/").content.decode()

    for name in ("粉丝", "活动", "内容", "会话与旅程"):
        assert name in page
    assert "登录尝试" in page and "Access attempts" not in page  # django-axes, translated in our catalogue


# --- The catalogue ----------------------------------------------------------------------------------------------


def test_the_catalogue_declares_chinese_with_one_plural_form():
    po = polib.pofile(str(PO_PATH))
    assert po.metadata["Language"] == "zh_Hans"
    assert po.metadata["Plural-Forms"].replace(" ", "") == "nplurals=1;plural=0;"
    assert "charset=UTF-8" in po.metadata["Content-Type"]
    assert po.metadata["Project-Id-Version"] == "wechat_crm"


def test_every_catalogue_entry_is_translated_and_none_is_fuzzy():
    entries = _entries()
    assert len(entries) > 700

    untranslated = [e.msgid for e in entries if not (e.msgstr_plural.get(0) if e.msgid_plural else e.msgstr).strip()]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]

    assert untranslated == []
    assert fuzzy == []


def test_the_committed_mo_holds_exactly_the_po_translations():
    with MO_PATH.open("rb") as fh:
        mo = gettext.GNUTranslations(fh)

    stale = []
    for e in _entries():
        if e.msgid_plural:
            got, want = (
                mo.npgettext(e.msgctxt, e.msgid, e.msgid_plural, 1)
                if e.msgctxt
                else mo.ngettext(e.msgid, e.msgid_plural, 1),
                e.msgstr_plural[0],
            )
        else:
            got, want = mo.pgettext(e.msgctxt, e.msgid) if e.msgctxt else mo.gettext(e.msgid), e.msgstr
        if got != want:
            stale.append(e.msgid)

    assert stale == [], f"{len(stale)} entries differ: run `make messages` and commit the .mo"


# --- What the product writes ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_api_error_message_is_chinese_by_default_and_english_on_request(django_user_model):
    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_superuser(username="api", password="pw"))

    chinese = api.post("/api/conversions/", {"events": "not a list"}, format="json")
    english = api.post("/api/conversions/", {"events": "not a list"}, format="json", HTTP_ACCEPT_LANGUAGE="en")

    assert chinese.status_code == 400 and chinese.json()["message"] == "`events` 必须是列表。"
    assert english.status_code == 400 and english.json()["message"] == "`events` must be a list."


@pytest.mark.django_db
def test_the_passive_reply_to_a_preference_keyword_is_chinese(client, settings):
    settings.WECHAT_ENCODING_AES_KEY = AES_KEY
    settings.WECHAT_ENCODING_AES_KEY_PREVIOUS = ""
    poster = CallbackPoster(client=client, token=settings.WECHAT_TOKEN, app_id=settings.WECHAT_APP_ID, aes_key=AES_KEY)

    response = poster.post(build_message("text", openid=OPENID, Content="TD"), "safe")

    reply = xml.parse(poster.reply_text(response).encode())
    assert reply["MsgType"] == "text"
    assert reply["Content"] == "您将不再收到我们的推送。回复“恢复”即可重新接收。"
    assert Subscriber.objects.get(openid=OPENID).pushes_paused


@pytest.mark.django_db
def test_a_plural_confirmation_is_chinese_and_english_keeps_its_plural():
    command = PreferenceCommand("weekly", value=2)

    assert preference_apply(openid=OPENID, command=command) == "您每周最多会收到 2 条推送。"
    with translation.override("en"):
        assert preference_apply(openid=OPENID, command=command) == "You will receive at most 2 pushes a week."
