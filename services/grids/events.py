"""Events grids publishes: declared in the shared contracts (``contracts.grids``), which other
services read instead of importing grids."""

from contracts.grids import (  # noqa: F401 - grids's catalogue, re-exported
    BUILDING_CREATED,
    DIVISION_CREATED,
    GRID_CREATED,
    GRID_REDRAWN,
    GRID_RETIRED,
    NETWORK_CREATED,
    RESIDENT_BOUND,
    STAFF_ASSIGNED,
    STAFF_UNASSIGNED,
    BuildingData,
    DivisionData,
    DivisionRef,
    GridData,
    NetworkData,
    ResidentData,
    StaffData,
    catalogue,
)
