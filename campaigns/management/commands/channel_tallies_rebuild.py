"""Recount the channels' counters (follows, first-touch subscribers) from the touches and the subscribers."""

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from campaigns import tallies


class Command(BaseCommand):
    help = _(
        "Recount every channel's follows and first-touch subscribers from the touches and the subscribers: the "
        "backfill of data written before the counters were kept, and a check. Safe to run again."
    )

    def handle(self, *args, **options) -> None:
        counts = tallies.tallies_rebuild()
        self.stdout.write(
            _("%(channels)d channels: %(follows)d follows, %(firsts)d first-touch subscribers")
            % {
                "channels": len({channel for channel, _key in counts}),
                "follows": sum(n for (_c, key), n in counts.items() if key == tallies.FOLLOWS),
                "firsts": sum(n for (_c, key), n in counts.items() if key == tallies.FIRST_TOUCHES),
            }
        )
