from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from wechat_crm.admin_filters import RangeDateTimeFilter

from .models import AuditLog

# Operators' accounts and roles in the admin's own look (django-unfold's forms for users and passwords).
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_filter = ["is_staff", "is_superuser", "is_active", "groups", ("last_login", RangeDateTimeFilter),
                   ("date_joined", RangeDateTimeFilter)]  # fmt: skip
    list_filter_submit = True


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


@admin.register(AuditLog)
class AuditLogAdmin(ModelAdmin):
    """Read-only: the audit log is written by the services that it audits, never by hand."""

    list_display = ["at", "actor_username", "action", "target_type", "target_id", "via"]
    list_filter = ["action", "via", ("at", RangeDateTimeFilter)]
    list_filter_submit = True
    search_fields = ["actor_username", "target_id"]
    readonly_fields = [f.name for f in AuditLog._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# The index page is the operators' dashboard (wechat_crm.dashboard fills its context).
admin.site.index_template = "wechat_crm/dashboard.html"
