"""Personal data at rest: AES-GCM encryption plus a keyed blind index.

One 32-byte data key (``GRIDGOV_DATA_KEY``, urlsafe base64) is stretched with
HKDF into two independent subkeys, so the encryption key never doubles as the
index key:

* ``seal``/``open`` encrypt a value (phone, national ID, a private signing key)
  with AES-256-GCM, a random nonce, and the purpose as associated data so a
  ciphertext copied into another column does not decrypt.
* ``index`` is HMAC-SHA256 of the normalised value: equal values give equal
  indexes (lookups, uniqueness) and nobody without the key can test guesses.

Embedded/dev mode: when ``data_key`` is empty a key is generated once into
``<data_dir>/identity-data.key`` (mode 0600) and a warning is logged. Every
process on the host reads the same file; a multi-host deployment MUST set
``GRIDGOV_DATA_KEY`` (hosts with different keys cannot read each other's rows).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

KEY_FILE = "identity-data.key"
VERSION = "v1"


class DataKey:
    def __init__(self, master: bytes):
        if len(master) != 32:
            raise ValueError("the data key must be 32 bytes (urlsafe base64)")
        self._aead = AESGCM(_derive(master, b"gridgov identity encryption"))
        self._index_key = _derive(master, b"gridgov identity blind index")

    @classmethod
    def from_settings(cls, settings) -> DataKey:
        if settings.data_key:
            return cls(_b64decode(settings.data_key))
        return cls(_b64decode(_dev_key(Path(settings.data_dir))))

    def seal(self, value: str, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), purpose.encode())
        return f"{VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, purpose: str) -> str:
        version, _, body = token.partition(":")
        if version != VERSION:
            raise ValueError(f"unknown ciphertext version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], purpose.encode()).decode()

    def index(self, value: str, purpose: str) -> str:
        return hmac.new(self._index_key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _dev_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: when several workers start at once exactly one writes the key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(new_key())
            log.warning("GRIDGOV_DATA_KEY is not set: generated a development data key; "
                        "set GRIDGOV_DATA_KEY in production", extra={"key_file": str(path)})
        except FileExistsError:
            pass
    else:
        log.warning("GRIDGOV_DATA_KEY is not set: using the development data key file",
                    extra={"key_file": str(path)})
    key = path.read_text().strip()
    while not key:  # another worker is between create and write
        key = path.read_text().strip()
    return key
