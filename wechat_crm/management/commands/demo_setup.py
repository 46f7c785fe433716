"""Prepare the demo that `make run` starts: a superuser whose login is printed, and demo data."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import gettext as _

from wechat_crm.demo import demo_content_load, demo_refuse_unsafe

DEMO_USERNAME = "admin"


class Command(BaseCommand):
    help = _("Create the demo superuser (printing its login) and load demo data. Safe to run again.")

    def handle(self, *args, **options) -> None:
        demo_refuse_unsafe()
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "wechat-crm-demo")
        with transaction.atomic():
            user, _created = get_user_model().objects.get_or_create(
                username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
            )
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        from django.core.management import call_command

        call_command("conversations_seed_examples", stdout=self.stdout)
        demo_content_load(by=user)
        port = os.environ.get("PORT", "8000")
        self.stdout.write(self.style.SUCCESS(_("Demo superuser ready.")))
        self.stdout.write(_("  admin:    %(url)s") % {"url": f"http://127.0.0.1:{port}/admin/"})
        self.stdout.write(_("  username: %(username)s") % {"username": DEMO_USERNAME})
        self.stdout.write(_("  password: %(password)s") % {"password": password})
