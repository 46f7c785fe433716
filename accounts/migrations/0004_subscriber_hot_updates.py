"""Let the callback's per-message update of a subscriber be a HOT update (no index maintenance).

Drops the index on (is_following, last_interaction_at) and, on PostgreSQL, leaves 20% of each page of
accounts_subscriber free so that the updated row version fits on the same page.
"""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE accounts_subscriber SET (fillfactor = 80)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE accounts_subscriber RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_subscriber_source_channel_stage"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="subscriber", name="subscriber_following_last_idx"),
        migrations.RunPython(set_fillfactor, reset_fillfactor),
    ]
