"""The kinds of interaction, one enumeration, and their named groups (each defined here and nowhere else).

A kind is the lowercase MsgType of a message, or the lowercase Event name of an event, except where both would
share a name: WeChat's automatic LOCATION event is `location_event`, the location message is `location`.
`link_click` and `link_forward` are ours (a tracked-link redirect; a forward is a click, identified by web
authorisation, of someone who does not follow). Kinds WeChat adds later are stored as they come, outside the
enumeration: the column accepts any value.

This module imports no model, so the gateway (wechat_crm.wechat) can name kinds before the app registry is ready.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class InteractionKind(models.TextChoices):
    # Messages (MsgType).
    TEXT = "text", _("Text message")
    IMAGE = "image", _("Image message")
    VOICE = "voice", _("Voice message")
    VIDEO = "video", _("Video message")
    SHORTVIDEO = "shortvideo", _("Short video message")
    LOCATION = "location", _("Location message")
    LINK = "link", _("Link message")
    MINIPROGRAMPAGE = "miniprogrampage", _("Mini program card")
    # Events (Event).
    SUBSCRIBE = "subscribe", _("Follow")
    UNSUBSCRIBE = "unsubscribe", _("Unfollow")
    SCAN = "scan", _("Scan of a QR code by a follower")
    LOCATION_EVENT = "location_event", _("Automatic location report")
    CLICK = "click", _("Menu click")
    VIEW = "view", _("Menu link opened")
    SCANCODE_PUSH = "scancode_push", _("Menu scan (result sent)")
    SCANCODE_WAITMSG = "scancode_waitmsg", _("Menu scan (waiting for a message)")
    PIC_SYSPHOTO = "pic_sysphoto", _("Menu photo")
    PIC_PHOTO_OR_ALBUM = "pic_photo_or_album", _("Menu photo or album")
    PIC_WEIXIN = "pic_weixin", _("Menu WeChat album")
    LOCATION_SELECT = "location_select", _("Menu location picker")
    SUBSCRIBE_MSG_POPUP_EVENT = "subscribe_msg_popup_event", _("Subscription notice consent")
    SUBSCRIBE_MSG_CHANGE_EVENT = "subscribe_msg_change_event", _("Subscription notice consent changed")
    SUBSCRIBE_MSG_SENT_EVENT = "subscribe_msg_sent_event", _("Subscription notice report")
    TEMPLATESENDJOBFINISH = "templatesendjobfinish", _("Template message report")
    MASSSENDJOBFINISH = "masssendjobfinish", _("Mass send report")
    PUBLISHJOBFINISH = "publishjobfinish", _("Publishing report")
    # Ours.
    LINK_CLICK = "link_click", _("Tracked link click")
    LINK_FORWARD = "link_forward", _("Tracked link opened by someone who does not follow (a forward)")


K = InteractionKind

# Messages the subscriber wrote or sent (every MsgType but "event").
MESSAGES: frozenset[str] = frozenset({K.TEXT, K.IMAGE, K.VOICE, K.VIDEO, K.SHORTVIDEO, K.LOCATION, K.LINK,
                                      K.MINIPROGRAMPAGE})  # fmt: skip

# Uses of the custom menu.
MENU_EVENTS: frozenset[str] = frozenset({K.CLICK, K.VIEW, K.SCANCODE_PUSH, K.SCANCODE_WAITMSG, K.PIC_SYSPHOTO,
                                         K.PIC_PHOTO_OR_ALBUM, K.PIC_WEIXIN, K.LOCATION_SELECT})  # fmt: skip

# What a subscriber does themselves: messages, menu use, scans, tracked-link clicks. Not follows (a stage of their
# own), not automatic location reports, not WeChat's reports about our sends.
SUBSCRIBER_ORIGINATED: frozenset[str] = MESSAGES | MENU_EVENTS | {K.SCAN, K.LINK_CLICK}

# WeChat's customer-service window (客服消息下发规则; computed in conversations.policy): a message opens 48 hours
# (5 messages); a follow, a QR scan or a menu click of the kinds WeChat names (click, scancode_push,
# scancode_waitmsg) opens one minute (3 messages). Opening a menu link (VIEW), a tracked link in a browser or an
# automatic location report (location_event) opens nothing.
WINDOW_OPENING_EVENTS: frozenset[str] = frozenset({K.SUBSCRIBE, K.SCAN, K.CLICK, K.SCANCODE_PUSH,
                                                   K.SCANCODE_WAITMSG})  # fmt: skip
WINDOW_OPENING: frozenset[str] = MESSAGES | WINDOW_OPENING_EVENTS

# Opening our tracked content: the funnel's "engaged".
ENGAGING: frozenset[str] = frozenset({K.LINK_CLICK})
# Menu clicks engage too when the funnel's settings say so (campaigns.FunnelSettings.menu_click_engages).
MENU_CLICKS: frozenset[str] = frozenset({K.CLICK, K.VIEW})

# WeChat's reports about our own sends: nothing the subscriber did.
SYSTEM_REPORTS: frozenset[str] = frozenset({K.TEMPLATESENDJOBFINISH, K.MASSSENDJOBFINISH, K.PUBLISHJOBFINISH,
                                            K.SUBSCRIBE_MSG_SENT_EVENT})  # fmt: skip

# What a person decided about subscription notices (订阅通知): accepting or rejecting them in WeChat's popup, and
# rejecting them later in WeChat's notice settings. Neither opens the customer-service window.
NOTICE_CONSENT_EVENTS: frozenset[str] = frozenset({K.SUBSCRIBE_MSG_POPUP_EVENT, K.SUBSCRIBE_MSG_CHANGE_EVENT})

# The kinds whose subscriber's last_interaction_at moves in their follow-ups (accounts.events.touch, the first
# follow-up of their routes in wechat_crm.wechat.dispatch), not in the callback's request: until those ran, such an
# interaction is newer than the column says (accounts.selectors.touches_pending). A follow moves it in the request;
# an automatic location report (no follow-ups) too; a tracked-link click when its buffer is stored (content.clicks).
TOUCHED_LATER: frozenset[str] = MESSAGES | MENU_EVENTS | NOTICE_CONSENT_EVENTS | {K.SCAN}
