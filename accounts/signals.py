"""What accounts announces to the apps built on it (accounts imports none of them)."""

from django.dispatch import Signal

# Sent after the follower import stored new followers whose WeChat profile names the QR scene they followed through
# (qr_scene_str), inside the import's transaction, with `openids`: those followers. The campaigns app attributes
# them to the channel of that scene.
followers_imported_with_scene = Signal()

# Sent by accounts.privacy.subscriber_erase inside its transaction, with `subscriber` (already erased) and `at`.
# The apps built on accounts stop what they still hold for the person (queued messages, active journeys) and return
# how many rows they cancelled.
subscriber_erased = Signal()

# Sent by the profile fetch (accounts.profiles) after a batch of profiles is stored and committed, with
# `subscriber_ids`: the subscribers WeChat answered for. Journeys run the welcome steps that waited for the name.
profiles_fetched = Signal()
