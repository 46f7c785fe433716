"""Rebuild or verify the funnel summary (campaigns.summary) from the subscribers' stored stage columns.

    python manage.py funnel_summary --rebuild    # recompute it all (after a bulk import made outside the product)
    python manage.py funnel_summary --check      # compare it with a recomputation; exit status 1 if they differ

The stage maintenance keeps the summary current; the migration that created it filled it the same way. Both cover
the summary's cells (campaigns.cells) too: the rebuild recounts them, the check compares them with a recount.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from campaigns.cells import cells_differences
from campaigns.summary import summary_differences, summary_rebuild


class Command(BaseCommand):
    help = "Rebuild or verify the funnel summary from the subscribers' stage columns."

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Recompute the whole summary.")
        parser.add_argument("--check", action="store_true", help="Compare the summary with a recomputation.")

    def handle(self, *args, rebuild: bool, check: bool, **options):
        if not rebuild and not check:
            raise CommandError(_("Give --rebuild, --check or both."))
        if rebuild:
            written = summary_rebuild()
            self.stdout.write(_("Funnel summary rebuilt: %(rows)d rows.") % {"rows": written})
        if check:
            differences = summary_differences() + cells_differences()
            for kind, row in differences:
                self.stdout.write(f"{kind}: {row}")
            if differences:
                raise CommandError(_("The funnel summary differs from its recomputation."))
            self.stdout.write(_("The funnel summary matches the stage columns."))
