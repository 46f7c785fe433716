"""What we say to a subscriber and when, by concern: auto-replies and the custom menu (rules), the inbox and its
outbound messages and operator notifications (inbox), journeys (journeys) and the lead score (scores)."""

from .inbox import Conversation, Notification, OutboundMessage, QuickReply
from .journeys import ChannelTopic, Journey, JourneyEnrollment, JourneyStep, JourneyStepRun
from .rules import AutoReplyRule, Menu
from .scores import ScoreEntry, ScoreRule

__all__ = [
    "AutoReplyRule",
    "ChannelTopic",
    "Conversation",
    "Journey",
    "JourneyEnrollment",
    "JourneyStep",
    "JourneyStepRun",
    "Menu",
    "Notification",
    "OutboundMessage",
    "QuickReply",
    "ScoreEntry",
    "ScoreRule",
]
