"""API authentication: DRF's token authentication, reading the caller's roles in the token's query.

Every API call asks for the caller's roles (`permissions.RolePermission`): on PostgreSQL the token's query reads the
names of the user's role groups too, so a call costs one query less. A wrong token or an inactive user is refused by
DRF's own code, with its messages.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connections
from django.db.models import OuterRef
from rest_framework.authentication import TokenAuthentication

from .permissions import ROLES, roles_prime


class RoleTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        tokens = self.get_model().objects.select_related("user")
        if connections[tokens.db].vendor != "postgresql":
            return super().authenticate_credentials(key)
        role_names = Group.objects.filter(user=OuterRef("user_id"), name__in=ROLES).values("name")
        token = tokens.annotate(role_names=ArraySubquery(role_names)).filter(key=key).first()
        if token is None or not token.user.is_active:
            return super().authenticate_credentials(key)  # raises AuthenticationFailed with DRF's message
        roles_prime(token.user, token.role_names)
        return token.user, token
