"""Periodic work of the funnel (schedules in wechat_crm/schedules.py)."""

from celery import shared_task

from . import stages


@shared_task(name="campaigns.tasks.stages_backfill")
def stages_backfill() -> int:
    """Subscribers imported by sync_followers (no follow event) get their first follow from WeChat's subscribe time."""
    return stages.stages_backfill()


@shared_task(name="campaigns.tasks.channel_tallies_compact")
def channel_tallies_compact() -> int:
    """Every 5 minutes: fold each channel's counter additions into one row per counter (where they piled up)."""
    from . import tallies

    return tallies.tallies_compact()


@shared_task(name="campaigns.tasks.funnel_cells_fold")
def funnel_cells_fold() -> int:
    """Every 5 minutes: fold the funnel summary's cell additions into one row per cell (campaigns.cells)."""
    from . import cells

    return cells.cells_fold()
