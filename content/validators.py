"""Validators of uploaded content."""

from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

COVER_MAX_BYTES = 5 * 1024 * 1024


def validate_cover_size(file) -> None:
    size = getattr(file, "size", None)
    if size is not None and size > COVER_MAX_BYTES:
        raise ValidationError(
            _("The image is %(size)s; the largest allowed is %(max)s."),
            code="file_too_large",
            params={"size": filesizeformat(size), "max": filesizeformat(COVER_MAX_BYTES)},
        )
