"""The two serving paths of bench/webhook.py, so that its three targets always share one.

direct  the product's wechat_crm.wsgi handler (the callback skips Django's middleware), and the bare view and the
        minimal callback skip it the same way;
chain   Django's plain WSGI handler: all three go through URL resolution and the whole middleware chain, as every
        page but the callback does in the product.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import set_urlconf

from wechat_crm.wsgi import Handler


class Direct(Handler):
    """The product's handler, with the yardsticks answered the way it answers the callback."""

    def __init__(self) -> None:
        super().__init__()
        from bench.urls import bare, callback_without_replay_check, minimal

        self.yardsticks = {
            "/bench/bare/": bare,
            "/bench/minimal/": minimal,
            "/bench/callback-without-replay-check/": callback_without_replay_check,
        }

    def get_response(self, request):
        view = self.yardsticks.get(request.path_info)
        if view is None:
            return super().get_response(request)
        set_urlconf(settings.ROOT_URLCONF)
        response = view(request)
        response._resource_closers.append(request.close)
        return response


direct = Direct()
chain = WSGIHandler()
