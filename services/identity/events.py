"""Events identity publishes: declared in the shared contracts (``contracts.identity``),
since every service obeys the account lifecycle through the kit."""

from contracts.identity import (  # noqa: F401 - identity's catalogue, re-exported
    KINDS,
    ROLE_GRANTED,
    ROLE_REVOKED,
    USER_DISABLED,
    USER_ENABLED,
    USER_ERASED,
    USER_REGISTERED,
    AccountChanged,
    RoleChanged,
    UserRegistered,
    catalogue,
)
