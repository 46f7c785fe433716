"""gunicorn's settings, read from the working directory (`gunicorn wechat_crm.wsgi:application`, the Procfile).

Its error and access logs go through the product's masking filter (wechat_crm.logging.OpenidMaskFilter): the access
log prints each request line, and WeChat's callback URL carries the openid, the signature, the timestamp and the
nonce. The access log is on (stdout), whatever --access-logfile says; the command line sets everything else.
"""

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_openids": {"()": "wechat_crm.logging.OpenidMaskFilter"}},
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"},
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "filters": ["mask_openids"],
            "stream": "ext://sys.stderr",
        },
        "access_console": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "filters": ["mask_openids"],
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": []},
}
