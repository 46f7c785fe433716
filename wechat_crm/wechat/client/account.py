"""The account's set-up on WeChat: QR codes with a scene, and the custom menu."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import messages


@dataclass(frozen=True, slots=True)
class QRCodeTicket:
    """WeChat's answer to a QR code request: the ticket (its image), the URL the code encodes, and its lifetime
    in seconds (None for a permanent code). Empty strings when WeChat's answer lacks them."""

    ticket: str
    url: str
    expire_seconds: int | None = None


class AccountMixin:
    def create_qrcode(self, *, scene_str: str, expire_seconds: int | None = None) -> QRCodeTicket:
        """A QR code whose scans carry `scene_str`: temporary with `expire_seconds`, permanent without."""
        if expire_seconds:
            body = messages.qrcode_temporary(scene_str=scene_str, expire_seconds=expire_seconds)
        else:
            body = messages.qrcode_permanent(scene_str=scene_str)
        result: Any = self.post("qrcode/create", data=body)
        result = result if isinstance(result, dict) else {}
        expires = result.get("expire_seconds")
        return QRCodeTicket(
            ticket=str(result.get("ticket") or ""),
            url=str(result.get("url") or ""),
            expire_seconds=int(expires) if expires else None,
        )

    def menu_create(self, buttons: Sequence[Mapping[str, Any]]) -> None:
        """Publishes the custom menu (it replaces the current one)."""
        self.post("menu/create", data=messages.menu(buttons))
