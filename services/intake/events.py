"""Events intake publishes: declared in the shared contracts (``contracts.intake``), which other
services read instead of importing intake."""

from contracts.intake import (  # noqa: F401 - intake's catalogue, re-exported
    CHANNELS,
    PETITION_FOLLOWED,
    PETITION_MERGED,
    PETITION_RATED,
    PETITION_REOPENED,
    PETITION_SUBMITTED,
    PETITION_WITHDRAWN,
    PetitionFollowed,
    PetitionMerged,
    PetitionRated,
    PetitionReopened,
    PetitionSubmitted,
    PetitionWithdrawn,
    Place,
    catalogue,
)
