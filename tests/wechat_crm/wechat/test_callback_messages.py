"""Every message and event type WeChat sends round-trips through the signed callback into one Interaction."""

import pytest

from accounts.models import Interaction, Subscriber
from tests.fixtures.wechat_payloads import EVENT_DEFAULTS, MESSAGE_DEFAULTS, MODES, OPENID, build_message

pytestmark = pytest.mark.django_db

ALL_KINDS = [*MESSAGE_DEFAULTS, *EVENT_DEFAULTS]
# An event whose name is also a message type has a kind of its own.
STORED_KIND = {"LOCATION": "location_event"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_type_is_stored_once_in_every_mode(wechat_callback, kind, mode):
    if kind == "TEMPLATESENDJOBFINISH":  # a report about a send is stored for a subscriber we hold, never creates one
        Subscriber.objects.create(openid=OPENID)
    xml = build_message(kind)

    response = wechat_callback.post(xml, mode=mode)

    assert response.status_code == 200
    assert wechat_callback.reply_text(response) == "success"
    interaction = Interaction.objects.get()
    assert interaction.kind == STORED_KIND.get(kind, kind.lower())
    assert interaction.raw_xml == xml
    assert interaction.data["MsgType"] == ("event" if kind in EVENT_DEFAULTS else kind)
    assert interaction.reply == "success"
