"""Fill in the attribution of conversions stored before it was filled in later: a purchase posted right after a
follow through a QR code, before the follow's follow-up ran, was stored without its first-touch channel.

    python manage.py attribution_backfill                  # conversions lacking a channel or a push
    python manage.py attribution_backfill --all            # every conversion's last touch derived again
    python manage.py attribution_backfill --after-id 5000  # resume after a conversion id

Idempotent (a second run changes nothing) and batched: each batch of conversions is its own short transaction, and
the last id is printed, so it can run on a live database and resume where it stopped.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from campaigns.attribution import conversions_backfill


class Command(BaseCommand):
    help = _("Fill in the first-touch channel and the last-touch push and content of conversions that lack them.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, help=_("Conversions per transaction."))
        parser.add_argument("--after-id", type=int, default=0, help=_("Start after this conversion id."))
        parser.add_argument("--all", action="store_true", help=_("Derive every conversion's last touch again."))

    def handle(self, *args, batch_size: int, after_id: int, **options):
        if batch_size < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        result = conversions_backfill(batch_size=batch_size, after_id=after_id, everything=options["all"])
        self.stdout.write(
            _("%(examined)d conversions examined, %(changed)d changed; last id %(last)d.")
            % {"examined": result.examined, "changed": result.changed, "last": result.last_id}
        )
