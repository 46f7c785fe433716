"""What the product does on each message and event: one table from kind to route. Read it to know the product.

A route has three parts:
  record      runs in the request: stores the interaction (exactly once) and its effect on the subscriber. The
              default, accounts.record_message, moves the subscriber's last_interaction_at in the request only
              when the route has no follow-ups; otherwise its first follow-up does (accounts.touch, by batches),
              and the request only looks up a subscriber we hold (or creates one we do not).
  replies     run in the request, in order: passive reply builders; the first that answers something other than
              "success" (or "") wins. None answering: "success".
  follow_ups  run later in Celery (accounts.tasks.interactions_process, follow_ups_run below), after the
              interaction is committed: the worker claims a batch of pending interactions, and each follow-up runs
              once on the batch's interactions of the kinds that have it, in order, with a few statements per
              batch. An interaction whose kind has follow-ups is stored with processed_at empty (the outbox); the
              others are stored as already processed.

Kinds are accounts.kinds.InteractionKind. The handlers come from each app's `events` module; this table is the
only place that says which kind gets which, so nothing depends on the order of INSTALLED_APPS.

Two routes start elsewhere than the callback:
  link_click  recorded by the tracked-link redirect (content.services.link_click_record, through the click buffer
              content.clicks, stored by batches; or on the way back from WeChat's authorise page,
              content.services.link_auth); its follow-ups are here. So is link_forward.
  conversions are not WeChat events: what follows them is the table campaigns.events.CONVERSION_FOLLOW_UPS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from accounts import events as accounts
from accounts.kinds import TOUCHED_LATER
from accounts.kinds import InteractionKind as K
from campaigns import events as campaigns
from content import events as content
from conversations import events as conversations
from conversations import outbound
from publishing import events as publishing

from .inbound import SUCCESS, InboundMessage

ReplyBuilder = Callable[[InboundMessage], str]
FollowUp = Callable[[Sequence[Any]], None]  # receives a batch of accounts.Interaction rows of the route's kinds


@dataclass(frozen=True)
class Route:
    record: Callable[..., Any] = accounts.record_message
    replies: Sequence[ReplyBuilder] = ()
    follow_ups: Sequence[FollowUp] = ()

    def answer(self, message: InboundMessage) -> str:
        """The first builder's answer that is not "success" or empty; "success" when none answers."""
        for builder in self.replies:
            answer = builder(message)
            if answer and answer != SUCCESS:
                return answer
        return SUCCESS


# Reply builders shared by several kinds.
FOLLOW_OR_SCAN_REPLIES = (
    conversations.reply_channel_rules,  # a rule that targets the scene's channel beats the channel's own welcome
    campaigns.reply_channel_welcome,
    conversations.reply_rules,
)
TEXT_OR_CLICK_REPLIES = (conversations.reply_preferences, conversations.reply_rules)

# What follows any message the subscriber sends: last_interaction_at, the funnel, the lead score, the stage journeys,
# the inbox.
MESSAGE_FOLLOW_UPS = (
    accounts.touch,
    campaigns.stage_advance,
    conversations.score,
    conversations.journeys_current_stage,
    conversations.inbox_record,
)

# Follows come first: a batch of interactions runs its follow-ups in the order this table first names them.
ROUTES: dict[str, Route] = {
    # --- Follows. ------------------------------------------------------------------------------------------------
    # Creates or reactivates the subscriber and adds the follow to the history (the first follow's scene is the
    # source scene); replies with the channel's rule or welcome; later fetches the profile, attributes the channel
    # (touch, first touch, tags) and a forwarded link that brought the follow (its push and content), gives the channel
    # to the conversions posted before, keeps the first follow in the funnel, scores, and enters the journeys.
    K.SUBSCRIBE: Route(
        record=accounts.record_follow,
        replies=FOLLOW_OR_SCAN_REPLIES,
        follow_ups=(
            accounts.profile_fetch_later,
            campaigns.channel_attribute,
            campaigns.forward_attribute,
            campaigns.conversion_attribute,  # conversions posted before this follow-up get its channel
            campaigns.stage_follow,
            conversations.score,
            conversations.template_auto_reply,
            conversations.journeys_current_stage,
            conversations.journeys_follow,
        ),
    ),
    # Not following any more (last_interaction_at is not touched); the history keeps the unfollow; later the pushes
    # of the days before count it.
    K.UNSUBSCRIBE: Route(record=accounts.record_unfollow, follow_ups=(content.push_unfollows_count,)),
    # A follower scans a channel's QR code.
    K.SCAN: Route(
        replies=FOLLOW_OR_SCAN_REPLIES,
        follow_ups=(
            accounts.touch,
            campaigns.channel_attribute,
            campaigns.stage_advance,
            conversations.score,
            conversations.template_auto_reply,
            conversations.journeys_current_stage,
        ),
    ),
    # --- Messages: last_interaction_at moves forward (accounts.touch: the first follow-up of each route of a
    # message or event the subscriber sent, so that what follows in the batch sees it). ---------------------------
    K.TEXT: Route(
        replies=TEXT_OR_CLICK_REPLIES,
        follow_ups=(
            accounts.touch,
            campaigns.stage_advance,
            conversations.score,
            conversations.template_auto_reply,
            conversations.journeys_current_stage,
            conversations.inbox_record,
        ),
    ),
    K.IMAGE: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    K.VOICE: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    K.VIDEO: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    K.SHORTVIDEO: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    K.LOCATION: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    K.LINK: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    K.MINIPROGRAMPAGE: Route(follow_ups=MESSAGE_FOLLOW_UPS),
    # --- The custom menu. ----------------------------------------------------------------------------------------
    K.CLICK: Route(
        replies=TEXT_OR_CLICK_REPLIES,
        follow_ups=(
            accounts.touch,
            campaigns.stage_advance,
            conversations.score,
            conversations.template_auto_reply,
            conversations.journeys_current_stage,
        ),
    ),
    K.VIEW: Route(
        follow_ups=(accounts.touch, campaigns.stage_advance, conversations.score, conversations.journeys_current_stage)
    ),
    K.SCANCODE_PUSH: Route(follow_ups=(accounts.touch, campaigns.stage_advance)),
    K.SCANCODE_WAITMSG: Route(follow_ups=(accounts.touch, campaigns.stage_advance)),
    K.PIC_SYSPHOTO: Route(follow_ups=(accounts.touch, campaigns.stage_advance)),
    K.PIC_PHOTO_OR_ALBUM: Route(follow_ups=(accounts.touch, campaigns.stage_advance)),
    K.PIC_WEIXIN: Route(follow_ups=(accounts.touch, campaigns.stage_advance)),
    K.LOCATION_SELECT: Route(follow_ups=(accounts.touch, campaigns.stage_advance)),
    # --- Tracked links (recorded by the redirect, not the callback, which moves last_interaction_at itself); a
    # push's clicks are counted. ------------------------------------------------------------------------------
    K.LINK_CLICK: Route(
        follow_ups=(
            campaigns.stage_advance,
            conversations.score,
            conversations.journeys_current_stage,
            conversations.journeys_topic_click,
            campaigns.conversion_reattribute_clicked,  # a later conversion stored before this click: its last touch
            content.push_clicks_count,
        ),
    ),
    # A forward: someone who does not follow opened a tracked link (identified by web authorisation). Nothing runs
    # now; their later follow is attributed to the link's push and content (campaigns.forward_attribute).
    K.LINK_FORWARD: Route(),
    # --- Stored, touching last_interaction_at, nothing more. -----------------------------------------------------
    K.LOCATION_EVENT: Route(),  # the client's automatic location report
    # --- Subscription notices (订阅通知): the person's consent per template. --------------------------------------
    # Accepted or rejected in WeChat's popup; rejected later in WeChat's settings. Each item becomes a decision in
    # the consent history and moves the current consent (content.NoticeConsent), which every notice send checks.
    K.SUBSCRIBE_MSG_POPUP_EVENT: Route(follow_ups=(accounts.touch, content.notice_consents)),
    K.SUBSCRIBE_MSG_CHANGE_EVENT: Route(follow_ups=(accounts.touch, content.notice_consents)),
    # --- WeChat's reports about our sends: not something the subscriber did. ------------------------------------
    K.TEMPLATESENDJOBFINISH: Route(record=accounts.record_report, follow_ups=(content.delivery_job_finish,)),
    # A subscription notice delivered or not (its MsgID): the delivery becomes delivered or failed with the reason.
    K.SUBSCRIBE_MSG_SENT_EVENT: Route(record=accounts.record_report, follow_ups=(content.delivery_job_finish,)),
    K.MASSSENDJOBFINISH: Route(record=accounts.record_system_event, follow_ups=(content.mass_job_finish,)),
    # A publication (发布) finished: its article_id and permanent URLs, or its failure.
    K.PUBLISHJOBFINISH: Route(record=accounts.record_system_event, follow_ups=(publishing.publish_job_finish,)),
}
# A type WeChat added since (stored as it came, touching last_interaction_at).
DEFAULT_ROUTE = Route()


def follow_up_order(routes: Iterable[Route]) -> tuple[FollowUp, ...]:
    """Every follow-up of the routes once, in an order that agrees with each route's own (the worker runs each one
    once on a batch of interactions of several kinds). Raises ImproperlyConfigured when two routes disagree."""
    before: dict[FollowUp, set[FollowUp]] = {}
    for route in routes:
        for position, follow_up in enumerate(route.follow_ups):
            before.setdefault(follow_up, set()).update(route.follow_ups[:position])
    order: list[FollowUp] = []
    while before:
        ready = next((f for f, earlier in before.items() if earlier <= set(order)), None)
        if ready is None:
            raise ImproperlyConfigured(f"two routes run these follow-ups in opposite orders: {list(before)}")
        order.append(ready)
        del before[ready]
    return tuple(order)


# Recorded by the tracked-link redirect, which moves last_interaction_at itself (content.clicks), not by the callback.
RECORDED_ELSEWHERE = frozenset({K.LINK_CLICK, K.LINK_FORWARD})


def touch_check(routes: dict[str, Route], default: Route) -> None:
    """A route the callback records with accounts.record_message and that has follow-ups starts them with
    accounts.touch (the recorder leaves last_interaction_at to it), and accounts.kinds.TOUCHED_LATER (what the
    readers of last_interaction_at that cannot wait look for among pending interactions) names exactly those kinds.
    Raises ImproperlyConfigured otherwise."""
    if default.follow_ups:
        raise ImproperlyConfigured("the default route's follow-ups would need accounts.touch and a kind to name")
    later = set()
    for kind, route in routes.items():
        if kind in RECORDED_ELSEWHERE or route.record is not accounts.record_message or not route.follow_ups:
            continue
        if route.follow_ups[0] is not accounts.touch:
            raise ImproperlyConfigured(f"route {kind}: its first follow-up must be accounts.touch")
        later.add(kind)
    if later != TOUCHED_LATER:
        raise ImproperlyConfigured(f"accounts.kinds.TOUCHED_LATER must be {sorted(later)}")


touch_check(ROUTES, DEFAULT_ROUTE)
FOLLOW_UP_ORDER = follow_up_order(ROUTES.values())


def _table_position(kind: str) -> int:
    return list(ROUTES).index(kind) if kind in ROUTES else len(ROUTES)


def route_for(kind: str) -> Route:
    return ROUTES.get(kind, DEFAULT_ROUTE)


def follow_ups_for(kind: str) -> Sequence[FollowUp]:
    return route_for(kind).follow_ups


def follow_ups_run(interactions: Sequence[Any]) -> None:
    """The follow-ups of a batch of interactions (oldest first): each follow-up of their routes runs once, on the
    batch's interactions whose route has it, in an order that agrees with every route. The messages they queue (a
    follow's welcome, template auto-replies) are sent by this process right after the batch commits, not by a page
    task queued behind the follow-up tasks waiting in a burst (WeChat allows them only in the minute after a follow)."""
    routes = {kind: route_for(kind) for kind in {interaction.kind for interaction in interactions}}
    needed = {follow_up for route in routes.values() for follow_up in route.follow_ups}
    if needed <= set(FOLLOW_UP_ORDER):
        order: Sequence[FollowUp] = [follow_up for follow_up in FOLLOW_UP_ORDER if follow_up in needed]
    else:  # routes that are not the table's (tests)
        order = follow_up_order(routes[kind] for kind in sorted(routes, key=_table_position))
    with outbound.sent_after_commit():
        for follow_up in order:
            batch = [interaction for interaction in interactions if follow_up in routes[interaction.kind].follow_ups]
            if batch:
                follow_up(batch)


def handle(message: InboundMessage) -> str:
    """Record the message (exactly once) and return the passive reply (the stored one for a retry)."""
    route = route_for(message.kind)
    reply = route.answer(message)
    recorded = route.record(message=message, reply=reply, has_follow_ups=bool(route.follow_ups))
    return recorded.reply
