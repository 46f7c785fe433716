"""The roles the tests walk, and a user of each (the groups are created by a migration)."""

from django.contrib.auth.models import Group

ROLES = ["marketer", "operator", "admin", "integration", "anonymous", "no_role"]


def make_user(django_user_model, role: str):
    """A staff user in the role's group; `no_role` is a staff user in no group (an account made before the roles)."""
    if role == "anonymous":
        return None
    user = django_user_model.objects.create_user(username=f"u_{role}", password="pw", is_staff=True)
    if role != "no_role":
        user.groups.add(Group.objects.get(name=role))
    return user
