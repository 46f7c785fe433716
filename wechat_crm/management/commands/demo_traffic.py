"""`make run`'s demo traffic: once the web server and the fake WeChat server answer, create the demo channels (their
QR codes come from the fake server) and let simulated people follow through them, write, click and unfollow."""

import os
import time

import urllib3
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from wechat_crm.demo import demo_channels_create, demo_publish, demo_refuse_unsafe
from wechat_crm.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create the demo channels and simulate followers against the running demo; then stay up (for honcho)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--count", type=int, default=int(os.environ.get("DEMO_SUBSCRIBERS", "60")))
        parser.add_argument("--duration", type=float, default=120.0, help="Spread the follows over this many seconds.")
        parser.add_argument("--wait", type=float, default=90.0, help="Seconds to wait for the servers.")
        parser.add_argument(
            "--web",
            default=os.environ.get("WEB_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}",
            help="The web server (default: WEB_URL, which `make run` sets; else PORT on 127.0.0.1).",
        )
        parser.add_argument("--exit", action="store_true", help="Exit when done instead of staying up.")

    def handle(self, *args, **options) -> None:
        demo_refuse_unsafe()
        try:
            self._traffic(options)
        except CommandError as exc:
            if options["exit"]:
                raise
            # Under honcho a process that exits stops the whole demo: say what went wrong and stay up.
            self.stderr.write(_("No demo traffic: %(error)s") % {"error": exc})
        else:
            self.stdout.write(_("Demo traffic done; the demo keeps running (Ctrl-C stops it)."))
        if options["exit"]:
            return
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return

    def _traffic(self, options) -> None:
        web = options["web"].rstrip("/")
        fake = settings.WECHAT_API_BASE_URL.rstrip("/")
        self._wait(f"{web}/healthz", options["wait"])
        self._wait(f"{fake}/_fake/health", options["wait"])
        try:
            scenes = demo_channels_create()
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["count"] > 0:
            call_command(
                "simulate_subscribers", count=options["count"], duration=options["duration"], seed=None,
                callback=f"{web}/wechat/callback/", fake_wechat=fake, channels=",".join(scenes), stdout=self.stdout,
                stderr=self.stderr,
            )  # fmt: skip
        try:  # one article published on WeChat and one news push, through the fake's publishing API
            done = demo_publish()
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(_("Published %(published)s article(s), scheduled %(news_pushes)s news push(es).") % done)

    def _wait(self, url: str, seconds: float) -> None:
        http = urllib3.PoolManager(retries=False, timeout=2.0)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                http.request("GET", url)  # any answer: the server is up (healthz may report a degraded part)
                return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.5)
        raise CommandError(_("%(url)s did not answer within %(seconds)d s.") % {"url": url, "seconds": seconds})
