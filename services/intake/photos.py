"""Where photo bytes live: a small port, and a filesystem implementation.

Photos are content-addressed by SHA-256, so the same picture uploaded twice is
stored once and a stored file is never rewritten. Rows in the database keep
only the address, type and size. An object store (S3, MinIO) fits the same port.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class PhotoStore:
    def put(self, data: bytes) -> str:
        """Store ``data``; return its address (hex SHA-256)."""
        raise NotImplementedError

    def get(self, address: str) -> bytes:
        """The bytes at ``address``; FileNotFoundError when missing."""
        raise NotImplementedError

    def delete(self, address: str) -> None:
        """Remove the bytes at ``address`` (nothing when they are gone already). The caller
        makes sure no photo row refers to them any more (several may: same bytes)."""
        raise NotImplementedError


class FilesystemPhotoStore(PhotoStore):
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, address: str) -> Path:
        if len(address) != 64 or any(c not in "0123456789abcdef" for c in address):
            raise FileNotFoundError(address)
        return self.root / address[:2] / address[2:4] / address

    def put(self, data: bytes) -> str:
        address = hashlib.sha256(data).hexdigest()
        path = self._path(address)
        if path.exists():
            return address
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside and rename: readers never see half a photo, concurrent writers agree.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return address

    def get(self, address: str) -> bytes:
        return self._path(address).read_bytes()

    def delete(self, address: str) -> None:
        try:
            self._path(address).unlink(missing_ok=True)
        except FileNotFoundError:  # not an address this store gives out
            pass
