"""Every periodic task, in one place. Each entry is crontab-based and expires before the next run."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {}


def every_minute(task: str, **kwargs) -> dict:
    return {"task": task, "schedule": crontab(), "options": {"expires": 55}, **kwargs}


# Callback follow-ups whose enqueue failed (broker down) or whose task was lost.
BEAT_SCHEDULE["accounts-interactions-sweep"] = every_minute("accounts.tasks.interactions_sweep")

# Tracked-link clicks left in the click buffer (the redirect asks for a drain at once; this is the net).
BEAT_SCHEDULE["content-link-clicks-drain"] = every_minute("content.tasks.link_clicks_drain")

# Profiles left pending (their fetch failed for good or its enqueue was lost): fetched every 5 minutes.
BEAT_SCHEDULE["accounts-profiles-fetch-pending"] = {
    "task": "accounts.tasks.profiles_fetch_pending",
    "schedule": crontab(minute="*/5"),
    "options": {"expires": 290},
}

# Pushes: claim due pushes exactly once (the countdown task at scheduling is the fast path); resume stalled sends.
BEAT_SCHEDULE["content-pushes-dispatch-due"] = every_minute("content.tasks.pushes_dispatch_due")
# The pushes' counters: their additions folded into one row per counter (content.services.deliveries.tallies).
BEAT_SCHEDULE["content-push-tallies-compact"] = {
    "task": "content.tasks.push_tallies_compact",
    "schedule": crontab(minute="*/5"),
    "options": {"expires": 290},
}

# Conversations: due journey steps every minute (due_at is stored: waits survive restarts); dormant leads hourly;
# outbound messages whose enqueue was lost; lead scores decayed daily at 03:10.
BEAT_SCHEDULE["conversations-journeys-advance"] = every_minute("conversations.tasks.journeys_advance")
BEAT_SCHEDULE["conversations-outbound-resend-stuck"] = every_minute("conversations.tasks.outbound_resend_stuck")
BEAT_SCHEDULE["conversations-journeys-enter-dormant"] = {
    "task": "conversations.tasks.journeys_enter_dormant",
    "schedule": crontab(minute=7),
    "options": {"expires": 3500},
}
BEAT_SCHEDULE["conversations-scores-decay"] = {
    "task": "conversations.tasks.scores_decay",
    "schedule": crontab(minute=10, hour=3),
    "options": {"expires": 3600},
}

# The funnel: imported followers get their first follow time (callback follows get it from their follow-up).
BEAT_SCHEDULE["campaigns-stages-backfill"] = {
    "task": "campaigns.tasks.stages_backfill",
    "schedule": crontab(minute=20),
    "options": {"expires": 3500},
}

# The channels' counters (follows, first touches): their additions folded into one row per counter.
BEAT_SCHEDULE["campaigns-channel-tallies-compact"] = {
    "task": "campaigns.tasks.channel_tallies_compact",
    "schedule": crontab(minute="2-59/5"),
    "options": {"expires": 290},
}

# The funnel summary's cells: their additions folded into one row per cell (campaigns.cells).
BEAT_SCHEDULE["campaigns-funnel-cells-fold"] = {
    "task": "campaigns.tasks.funnel_cells_fold",
    "schedule": crontab(minute="4-59/5"),
    "options": {"expires": 290},
}

# Publishing: WeChat's statistics of yesterday (datacube has a day's figures from the next day) at 08:15 Beijing
# time; publications whose PUBLISHJOBFINISH did not come are asked about every 5 minutes.
BEAT_SCHEDULE["publishing-stats-pull-daily"] = {
    "task": "publishing.tasks.stats_pull_daily",
    "schedule": crontab(minute=15, hour=8),
    "options": {"expires": 3600},
}
BEAT_SCHEDULE["publishing-publications-poll"] = {
    "task": "publishing.tasks.publications_poll",
    "schedule": crontab(minute="*/5"),
    "options": {"expires": 290},
}
