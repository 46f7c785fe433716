"""The pieces of a simulation: what the simulated people say, where they are and what they tap, one step of a
person's script, the run's summary, and the limit on the rate of sending. :mod:`.simulator` runs them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TEXTS = ["你好", "在吗？", "优惠", "怎么购买", "help", "价格多少", "谢谢", "退货", "营业时间", "1"]
PLACES = [(39.9042, 116.4074, "北京市东城区"), (31.2304, 121.4737, "上海市黄浦区"), (23.1291, 113.2644, "广州市越秀区"),
          (22.5431, 114.0579, "深圳市福田区"), (30.5728, 104.0668, "成都市锦江区")]  # fmt: skip
DEFAULT_CLICK_KEYS = ["MENU_LATEST", "MENU_HELP", "MENU_CONTACT"]
DEFAULT_VIEW_URLS = ["https://example.com/shop", "https://example.com/about"]
ACTIONS = ["text", "CLICK", "VIEW", "image", "location"]
ACTION_WEIGHTS = [40, 20, 15, 15, 10]


class SimulatorError(RuntimeError):
    """The simulation cannot run (callback or fake server unreachable, bad options)."""


@dataclass
class Step:
    person: int
    openid: str
    at: float
    kind: str  # subscribe, unsubscribe, SCAN, CLICK, VIEW, text, image, location
    fields: dict[str, Any] = field(default_factory=dict)
    register: dict[str, Any] | None = None  # what to tell the fake server before sending


@dataclass
class Summary:
    people: int = 0
    sent: int = 0
    answered: int = 0
    replied: int = 0
    failed: int = 0
    retried: int = 0
    by_type: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "sent": self.sent,
            "answered": self.answered,
            "replied": self.replied,
            "failed": self.failed,
            "retried": self.retried,
            "by_type": dict(self.by_type),
            "failures": dict(self.failures),
            "elapsed": round(self.elapsed, 3),
            "events_per_second": round(self.sent / self.elapsed, 1) if self.elapsed else None,
            "warnings": self.warnings,
        }


class _RateLimiter:
    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def _scene_fields(scene: str) -> dict[str, Any]:
    if scene.isdigit():
        return {"qr_scene": int(scene), "qr_scene_str": ""}
    return {"qr_scene": 0, "qr_scene_str": scene}
