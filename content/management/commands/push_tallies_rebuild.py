"""Recount pushes' counters (the push report's figures) from their deliveries, clicks and unfollows."""

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from content.models import Push
from content.services.deliveries import tallies


class Command(BaseCommand):
    help = _(
        "Recount the counters of every push (or those given) from their deliveries, clicks and unfollows: the backfill "
        "of pushes sent before the counters were kept, and a check. Safe to run again, also during a send."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("push_ids", nargs="*", type=int, help=_("Push ids (default: every push that started)."))

    def handle(self, *args, **options) -> None:
        ids = options["push_ids"] or list(
            Push.objects.filter(started_at__isnull=False).order_by("pk").values_list("pk", flat=True)
        )
        for push_id in ids:
            counts = tallies.tallies_rebuild(push_id=push_id)
            self.stdout.write(
                _("push %(id)s: %(recipients)s recipients, %(counters)s counters")
                % {"id": push_id, "recipients": counts[tallies.RECIPIENTS], "counters": len(counts)}
            )
