"""The WSGI application (gunicorn: `wechat_crm.wsgi:application`).

The WeChat callback is answered without Django's middleware. Everything in MIDDLEWARE serves browsers (sessions,
CSRF, authentication, language, clickjacking headers, admin lockouts, static files); the callback answers WeChat's
servers only and is authenticated by its signature (wechat_crm.wechat.inbound). Skipping the chain saves about a
tenth of a millisecond of CPU per message (bench/webhook.py). Every other path takes the whole chain.
"""

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import reverse, set_urlconf

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wechat_crm.settings.production")  # never debug by default


class Handler(WSGIHandler):
    def __init__(self) -> None:
        super().__init__()
        from wechat_crm.wechat.views import callback  # after django.setup()

        self.callback_path = reverse("wechat:callback")
        self.callback = callback

    def get_response(self, request):
        if request.path_info != self.callback_path:
            return super().get_response(request)
        set_urlconf(settings.ROOT_URLCONF)
        response = self.callback(request)  # answers every outcome itself, 4xx and 503 included
        response._resource_closers.append(request.close)
        return response


def get_application() -> Handler:
    django.setup(set_prefix=False)
    return Handler()


application = get_application()
