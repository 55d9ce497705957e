"""Events points publishes: declared in the shared contracts (``contracts.points``), which
other services (notify) read instead of importing points."""

from contracts.points import (  # noqa: F401 - points' catalogue, re-exported
    ACCOUNT_EXPIRED,
    ACCOUNT_KINDS,
    ACTIVITY_ATTENDED,
    AWARD_GRANTED,
    HOUSEHOLD_INSPECTED,
    REDEMPTION_CANCELLED,
    REDEMPTION_EXPIRED,
    REDEMPTION_HANDED_OVER,
    REDEMPTION_HELD,
    TRANSFER_PENDING,
    TRANSFER_POSTED,
    TRANSFER_VOIDED,
    TransferPending,
    TransferPosted,
    TransferVoided,
    catalogue,
)
