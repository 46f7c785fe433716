"""Run the follow-ups of a backlog of pending interactions by large batches (accounts.catch_up), for instance after
an import, an outage of the worker or a replay.

    python manage.py interactions_catch_up                    # 2 processes, batches of 2,000
    python manage.py interactions_catch_up --processes 1 --batch 5000

It takes what is pending when it starts; the worker may keep running (they skip what the other holds). Safe to
stop and run again: each batch commits with its follow-ups.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from accounts.catch_up import CATCH_UP_BATCH, interactions_catch_up


class Command(BaseCommand):
    help = _("Run the follow-ups of the pending interactions by large batches (a backlog).")

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int, default=2, help=_("Processes that share the backlog."))
        parser.add_argument(
            "--batch", type=int, default=CATCH_UP_BATCH, help=_("Interactions claimed at a time by each process.")
        )

    def handle(self, *args, processes: int, batch: int, **options):
        if processes < 1 or batch < 1:
            raise CommandError(_("--processes and --batch must be at least 1."))
        from wechat_crm.wechat.dispatch import follow_ups_run

        def progress(done: int) -> None:
            self.stdout.write(_("%(done)d interactions processed so far.") % {"done": done})

        result = interactions_catch_up(run=follow_ups_run, batch=batch, processes=processes, progress=progress)
        rate = result.processed / max(result.seconds, 1e-9)
        self.stdout.write(
            _("%(done)d interactions processed in %(seconds).0f s (%(rate).0f a second).")
            % {"done": result.processed, "seconds": result.seconds, "rate": rate}
        )
        if result.failed:
            raise CommandError(_("A process stopped on an error; the interactions it left stay pending."))
