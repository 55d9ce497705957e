"""identity's data key: the kit's :mod:`gridkit.crypto` under the ``identity`` context.

Kept as a name for code and tests that import ``identity.crypto``; the
implementation (AES-GCM, blind index, dev key file) lives in the kit.
"""

from __future__ import annotations

from collections.abc import Sequence

from gridkit import crypto
from gridkit.crypto import new_key

__all__ = ["DataKey", "new_key"]


class DataKey(crypto.DataKey):
    def __init__(self, master: bytes, context: str = "identity", previous: Sequence[bytes] = ()):
        super().__init__(master, context, previous)
