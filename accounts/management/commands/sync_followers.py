"""Import the Official Account's existing followers from WeChat (pages of its follower list, then
the profiles of each page).

    python manage.py sync_followers              # resume the unfinished sync, or start one
    python manage.py sync_followers --restart    # abandon the unfinished sync and start from the first page
    python manage.py sync_followers --max-pages 1

Resumable: the cursor is saved after each page, so a crash or Ctrl-C costs at most one page. Idempotent:
subscribers are upserted by openid.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from accounts.followers import FollowerSyncBusy, FollowerSyncError, follower_sync_run, follower_sync_unfinished


class Command(BaseCommand):
    help = _("Import the account's existing followers from WeChat, resuming an unfinished import.")

    def add_arguments(self, parser):
        parser.add_argument("--restart", action="store_true", help=_("Start from the first page again."))
        parser.add_argument(
            "--max-pages", type=int, default=None, help=_("Stop after this many pages of 10,000 followers.")
        )
        parser.add_argument("--no-progress", action="store_true", help=_("No progress bar."))

    def handle(self, *args, restart: bool, max_pages: int | None, no_progress: bool, **options):
        if max_pages is not None and max_pages < 1:
            raise CommandError(_("--max-pages must be at least 1."))
        sync = None if restart else follower_sync_unfinished()
        if sync is not None and sync.imported:
            self.stdout.write(
                _("Resuming the import started at %(started)s: %(imported)d followers imported so far.")
                % {"started": sync.started_at.isoformat(timespec="seconds"), "imported": sync.imported}
            )
        bar = tqdm(
            total=(sync.total or None) if sync else None,
            initial=sync.imported if sync else 0,
            unit=_("followers"),
            disable=no_progress or options.get("verbosity", 1) == 0,
            file=self.stderr._out,
        )

        def progress(imported: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(imported - bar.n)

        try:
            sync = follower_sync_run(max_pages=max_pages, restart=restart, on_progress=progress)
        except FollowerSyncBusy as exc:
            raise CommandError(str(exc)) from exc
        except FollowerSyncError as exc:
            bar.close()
            raise CommandError(
                _(
                    "The import stopped on a WeChat error: %(error)s. "
                    "Run the command again to resume from page %(page)d."
                )
                % {"error": exc, "page": exc.sync.pages + 1}
            ) from exc
        finally:
            bar.close()
        if sync.status == sync.Status.DONE:
            self.stdout.write(
                _("Done: %(imported)d followers imported (%(created)d new subscribers).")
                % {"imported": sync.imported, "created": sync.created}
            )
        else:
            self.stdout.write(
                _("Stopped after %(pages)d pages: %(imported)d of %(total)s followers imported. Run again to continue.")
                % {"pages": sync.pages, "imported": sync.imported, "total": sync.total or "?"}
            )
