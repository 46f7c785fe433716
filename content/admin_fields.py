"""Form fields the content admin's pages share."""

import json

from django import forms


class PrettyJSONField(forms.JSONField):
    """A JSON field shown indented, with Chinese text as is (not as \\u escapes)."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)
