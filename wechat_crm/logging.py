"""Logging helpers: openids (and the callback's signature and nonce) never reach a log line; production logs are JSON.

`OpenidMaskFilter` is attached to every handler in settings.LOGGING, to gunicorn's error and access logs
(gunicorn.conf.py) and to the Celery workers' (wechat_crm.celery connects setup_logging to settings.LOGGING). It
rewrites the record's message (after the %-arguments are merged) so that:
  - `openid=...` in a query string (WeChat's callback URL carries one; access logs print it) becomes `openid=***`;
  - `signature=`, `msg_signature=`, `nonce=` and `echostr=` values become `***` (a signed URL replayed within the
    clock skew would otherwise be one log line away);
  - `FromUserName`/`touser` values in XML or JSON become `***`;
  - anything shaped like an openid (28 URL-safe base64 characters starting with "o", as WeChat issues them)
    becomes `o***`.
It never drops a record, and costs one regex pass per emitted line (nothing on lines below the level).
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_PATTERNS = [
    (re.compile(r"(openid=)[^&\s\"'<>]+", re.IGNORECASE), r"\g<1>" + MASK),
    (re.compile(r"(\b(?:msg_signature|signature|nonce|echostr)=)[^&\s\"'<>]+", re.IGNORECASE), r"\g<1>" + MASK),
    (re.compile(r"(<FromUserName>(?:<!\[CDATA\[)?)[^<\]]+"), r"\g<1>" + MASK),
    (re.compile(r"(\"?(?:touser|openid)\"?\s*[:=]\s*\"?)[A-Za-z0-9_\-]{6,}"), r"\g<1>" + MASK),
    (re.compile(r"(?<![A-Za-z0-9_\-])o[A-Za-z0-9_\-]{27}(?![A-Za-z0-9_\-])"), "o" + MASK),
]


def mask_openids(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class OpenidMaskFilter(logging.Filter):
    """Masks openids in the formatted message and in the exception text of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours
            return True
        masked = mask_openids(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_openids(record.exc_text)
        return True
