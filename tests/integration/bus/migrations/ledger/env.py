"""Alembic environment of the bus tests' ledger service."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger_service import LedgerBase  # noqa: E402

from gridkit.migrations import run_env  # noqa: E402

run_env(LedgerBase.metadata)
