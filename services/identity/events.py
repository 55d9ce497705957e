"""Events identity publishes: declared in the shared contracts (``contracts.identity``),
since every service obeys the account lifecycle through the kit."""

from contracts.identity import (  # noqa: F401 - identity's catalogue, re-exported
    CODE_ISSUED,
    CODE_MESSAGES,
    CODE_PURPOSE,
    CODE_PURPOSES,
    KINDS,
    LANGUAGES,
    RECIPIENT_PURPOSE,
    ROLE_GRANTED,
    ROLE_REVOKED,
    TRANSIT_CONTEXT,
    USER_DISABLED,
    USER_ENABLED,
    USER_ERASED,
    USER_REGISTERED,
    AccountChanged,
    CodeIssued,
    RoleChanged,
    UserRegistered,
    catalogue,
)
