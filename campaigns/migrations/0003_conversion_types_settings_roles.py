"""The built-in conversion types, the funnel settings row, and the role groups (marketer, operator, admin)."""

from django.db import migrations


def defaults_seed(apps, using):
    """The built-in conversion types and the funnel settings row (idempotent; the tests seed them again after a
    flush through this function)."""
    ConversionType = apps.get_model("campaigns", "ConversionType")
    FunnelSettings = apps.get_model("campaigns", "FunnelSettings")
    for slug, name in (("register", "Register"), ("purchase", "Purchase"), ("download", "Download")):
        ConversionType.objects.using(using).get_or_create(slug=slug, defaults={"name": name})
    FunnelSettings.objects.using(using).get_or_create(pk=1)


def forwards(apps, schema_editor):
    defaults_seed(apps, schema_editor.connection.alias)

    # Permissions are normally created after migrate; create them now so that the groups can get them.
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in global_apps.get_app_configs():
        models_module = app_config.models_module  # restored: the test runner serializes only apps that have one
        app_config.models_module = models_module or True
        try:
            create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias)
        finally:
            app_config.models_module = models_module

    from wechat_crm.permissions import role_permissions_sync

    role_permissions_sync(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_funnel_conversions_campaigns"),
        ("accounts", "0008_subscriber_funnel_stages"),
        ("content", "0002_pushes_segments_deliveries"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
