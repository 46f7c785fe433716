"""QR code images of channels, rendered here from WeChat's QR content URL (WeChat's image host is unreachable)."""

from __future__ import annotations

import io

import segno


def _qr(url: str) -> segno.QRCode:
    return segno.make(url, error="m", micro=False)


def qr_png(url: str, *, scale: int = 10, border: int = 4) -> bytes:
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def qr_svg(url: str, *, scale: int = 10, border: int = 4) -> bytes:
    buffer = io.BytesIO()
    _qr(url).save(buffer, kind="svg", scale=scale, border=border, xmldecl=True)
    return buffer.getvalue()


def qr_svg_data_uri(url: str, *, scale: int = 5) -> str:
    """For an <img src=...> in the admin."""
    return _qr(url).svg_data_uri(scale=scale, border=4)
