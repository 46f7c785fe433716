"""Settings for bench/webhook.py: the product's base settings, not in debug, plus a bare view to compare with."""

from wechat_crm.settings.base import *  # noqa: F403
from wechat_crm.settings.base import LOGGING

DEBUG = False
ROOT_URLCONF = "bench.urls"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
