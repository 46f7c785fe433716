"""Play N WeChat users against our callback: ``python manage.py simulate_subscribers --count 100 --callback URL``."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from wechat_crm.demo import demo_refuse_unsafe
from wechat_crm.wechat.fake.simulator import Simulator, SimulatorError


class Command(BaseCommand):
    help = (
        "Simulate people following the account (some through channel QR codes), sending messages, clicking the "
        "menu, opening links and unfollowing, signed like WeChat, against a callback URL."
    )
    # It stands in for WeChat (or its users): the product's own system checks are not its business.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--count", type=int, required=True, help="How many people.")
        parser.add_argument("--callback", default=None, help="Callback URL (default: our /wechat/callback/ on PORT).")
        parser.add_argument("--fake-wechat", default=None, help="Fake WeChat URL: register follows/unfollows there.")
        parser.add_argument("--channels", default="", help="Comma-separated QR scene strings (or ids) to follow by.")
        parser.add_argument("--rate", type=float, default=None, help="At most this many events per second.")
        parser.add_argument("--duration", type=float, default=60.0, help="Spread the follows over this many seconds.")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a repeatable plan.")
        parser.add_argument("--fast", action="store_true", help="No waiting between events (tests, benchmarks).")
        parser.add_argument("--concurrency", type=int, default=4, help="Parallel senders (default 4).")
        parser.add_argument("--unfollow-share", type=float, default=0.15, help="Share of people who unfollow.")
        parser.add_argument(
            "--notice-templates",
            default="",
            help="Comma-separated subscription-notice template ids offered in WeChat's popup.",
        )
        parser.add_argument(
            "--notice-share", type=float, default=0.3, help="Share of people who answer the notice popup (default 0.3)."
        )
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait for the callback (WeChat: 5).")
        parser.add_argument("--token", default=None, help="Callback token (default: WECHAT_TOKEN).")
        parser.add_argument("--aes-key", default=None, help="EncodingAESKey (default: WECHAT_ENCODING_AES_KEY).")
        parser.add_argument("--appid", default=None, help="AppID (default: WECHAT_APP_ID).")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        parser.add_argument("--fail-on-error", action="store_true", help="Exit non-zero if any event failed.")

    def handle(self, *args, **options) -> None:
        demo_refuse_unsafe()
        if options["count"] < 0:
            raise CommandError(_("--count must not be negative."))
        if not 0 <= options["unfollow_share"] <= 1:
            raise CommandError(_("--unfollow-share must be between 0 and 1."))
        callback = options["callback"] or f"http://127.0.0.1:{settings.PORT}/wechat/callback/"
        channels = [c.strip() for c in options["channels"].split(",") if c.strip()]
        try:
            simulator = Simulator(
                callback=callback,
                count=options["count"],
                token=options["token"] if options["token"] is not None else settings.WECHAT_TOKEN,
                aes_key=options["aes_key"] if options["aes_key"] is not None else settings.WECHAT_ENCODING_AES_KEY,
                appid=options["appid"] if options["appid"] is not None else settings.WECHAT_APP_ID,
                fake_wechat=options["fake_wechat"],
                channels=channels,
                rate=options["rate"],
                duration=options["duration"],
                seed=options["seed"],
                fast=options["fast"],
                concurrency=options["concurrency"],
                timeout=options["timeout"],
                unfollow_share=options["unfollow_share"],
                notice_templates=[t.strip() for t in options["notice_templates"].split(",") if t.strip()],
                notice_share=options["notice_share"],
            )
            summary = simulator.run()
        except SimulatorError as exc:
            raise CommandError(str(exc)) from exc
        result = summary.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            self.stdout.write(
                _(
                    "%(people)d people: %(sent)d events sent, %(answered)d answered (%(replied)d with a reply), "
                    "%(failed)d failed, %(retried)d retries, in %(elapsed).1f s."
                )
                % result
            )
            by_type = ", ".join(f"{kind} {n}" for kind, n in sorted(result["by_type"].items()))
            self.stdout.write(_("By type: %(types)s") % {"types": by_type or "-"})
            if result["failures"]:
                failures = ", ".join(f"{why} {n}" for why, n in result["failures"].items())
                self.stderr.write(_("Failures: %(failures)s") % {"failures": failures})
            for warning in result["warnings"]:
                self.stderr.write(_("Warning: %(warning)s") % {"warning": warning})
        if options["fail_on_error"] and summary.failed:
            raise CommandError(_("%(failed)d events failed.") % {"failed": summary.failed})
