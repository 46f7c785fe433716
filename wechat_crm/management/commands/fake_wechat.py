"""Run the fake WeChat server: ``python manage.py fake_wechat --port 8801 --callback URL``."""

from __future__ import annotations

import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from wechat_crm.demo import demo_refuse_unsafe
from wechat_crm.wechat.fake.server import serve
from wechat_crm.wechat.fake.state import ConfigError, validate_config


class Command(BaseCommand):
    help = "Run the fake WeChat API server (a stand-in for api.weixin.qq.com) in the foreground."
    # It stands in for WeChat (or its users): the product's own system checks are not its business.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8801)
        parser.add_argument("--callback", default="", help="Our callback URL, where job-finish events are posted.")
        parser.add_argument("--workers", type=int, default=2, help="Worker processes (default 2).")
        parser.add_argument("--threads", type=int, default=16, help="Threads per worker (default 16).")
        parser.add_argument("--token", default=None, help="Callback token (default: WECHAT_TOKEN).")
        parser.add_argument("--aes-key", default=None, help="EncodingAESKey; empty for plain mode.")
        parser.add_argument("--appid", default=None, help="AppID (default: WECHAT_APP_ID).")
        parser.add_argument("--secret", default=None, help="AppSecret (default: WECHAT_APP_SECRET).")
        parser.add_argument("--token-ttl", type=int, default=7200, help="Access token lifetime in seconds.")
        parser.add_argument("--token-grace", type=int, default=300, help="Seconds a superseded token still works.")
        parser.add_argument("--state-dir", default=None, help="Directory for the shared state (default: a temp dir).")
        parser.add_argument("--users", type=int, default=0, help="Generate this many followers at start.")
        parser.add_argument("--quiet", action="store_true", help="Do not log one line per call.")

    def handle(self, *args, **options) -> None:
        demo_refuse_unsafe()
        config = {
            "callback_url": options["callback"],
            "token": options["token"] if options["token"] is not None else settings.WECHAT_TOKEN,
            "aes_key": options["aes_key"] if options["aes_key"] is not None else settings.WECHAT_ENCODING_AES_KEY,
            "appid": options["appid"] if options["appid"] is not None else settings.WECHAT_APP_ID,
            "secret": options["secret"] if options["secret"] is not None else settings.WECHAT_APP_SECRET,
            "token_ttl": options["token_ttl"],
            "token_grace": options["token_grace"],
        }
        if not 0 < options["port"] < 65536:
            raise CommandError(_("--port must be between 1 and 65535."))
        if options["workers"] < 1 or options["threads"] < 1:
            raise CommandError(_("--workers and --threads must be at least 1."))
        try:
            validate_config(config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((options["host"], options["port"]))
            except OSError as exc:
                raise CommandError(
                    _("Cannot listen on %(host)s:%(port)s: %(error)s")
                    % {"host": options["host"], "port": options["port"], "error": exc.strerror}
                ) from exc
        serve(
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            threads=options["threads"],
            state_dir=options["state_dir"],
            config=config,
            log_calls=not options["quiet"],
            generate_users=options["users"],
        )
