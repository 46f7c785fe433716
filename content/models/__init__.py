"""The content app's models, by concern:

- library.py: topics, articles (served at /c/<slug>/), WeChat message templates and tracked links;
- sending.py: the account's send policy, operators' openids, segments and pushes;
- deliveries.py: each recipient's delivery, mass-send batches and the pushes' counters;
- notices.py: subscription-notice templates and each follower's consent.

A push sends an Article and/or a MessageTemplate to a Segment; every link in what it sends goes through a TrackedLink
(/r/<token>).
"""

from .deliveries import Delivery, MassBatch, PushTally
from .library import Article, MessageTemplate, Topic, TrackedLink
from .notices import NoticeConsent, NoticeConsentChange, NoticeTemplate
from .sending import OperatorProfile, Push, Segment, SendPolicy

__all__ = [
    "Article",
    "Delivery",
    "MassBatch",
    "MessageTemplate",
    "NoticeConsent",
    "NoticeConsentChange",
    "NoticeTemplate",
    "OperatorProfile",
    "Push",
    "PushTally",
    "Segment",
    "SendPolicy",
    "Topic",
    "TrackedLink",
]
