"""Saving in the admin through the services that the API uses too."""

from django.db.models import Model


def adopt_saved(obj: Model, saved: Model) -> None:
    """Make the admin's unsaved instance the row a service created. The admin goes on with `obj` (its related
    formsets, its log entry, its redirect), so `obj` takes the saved row's primary key and fields."""
    obj.pk = saved.pk
    obj._state.adding = False
    obj.refresh_from_db()
