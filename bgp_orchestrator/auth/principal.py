"""The authenticated caller of a request, whatever credential it presented."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    """Roles, as Keycloak's realm roles name them."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    PLATFORM_ADMIN = "platform-admin"


# Within a tenant each role includes the ones ranked below it.
TENANT_RANK: dict[Role, int] = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

Credential = Literal["token", "api_key", "development"]


@dataclass(frozen=True, slots=True)
class Principal:
    """``tenant_id`` is None for a platform administrator acting on no tenant."""

    subject: str
    tenant_id: int | None
    roles: frozenset[Role]
    credential: Credential

    @property
    def platform_admin(self) -> bool:
        return Role.PLATFORM_ADMIN in self.roles

    def at_least(self, role: Role) -> bool:
        """True when the caller holds ``role`` (or a higher one) in its tenant."""
        if role is Role.PLATFORM_ADMIN:
            return self.platform_admin
        need = TENANT_RANK[role]
        return any(TENANT_RANK.get(held, 0) >= need for held in self.roles)
