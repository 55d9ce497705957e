"""Personal data at rest: AES-GCM encryption, a keyed blind index, and masking.

One 32-byte master key (``GRIDGOV_DATA_KEY``, urlsafe base64) is stretched with
HKDF into independent subkeys per service (the *context*, normally the service
name) and per use, so the encryption key never doubles as the index key and a
ciphertext from one service's database does not open in another's:

* ``seal``/``open`` encrypt a value (phone, national ID, a private signing key)
  with AES-256-GCM, a random nonce, and the purpose as associated data so a
  ciphertext copied into another column does not decrypt.
* ``index`` is HMAC-SHA256 of the value: equal values give equal indexes
  (lookups, uniqueness) and nobody without the key can test guesses.
* ``mask_phone`` / ``mask_national_id`` / ``mask_name`` show personal data to
  people who may know it exists but not what it is (``138****5678``, ``王*``).

Embedded/dev mode: when ``data_key`` is empty a key is generated once into
``<data_dir>/<service>-data.key`` (mode 0600) and a warning is logged. Every
process on the host reads the same file; a multi-host deployment MUST set
``GRIDGOV_DATA_KEY`` (hosts with different keys cannot read each other's rows).

    key = DataKey.from_settings(runtime.settings)        # context = settings.service
    sealed = key.seal("13812345678", "phone"); key.open(sealed, "phone")
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

VERSION = "v1"


class DataKey:
    def __init__(self, master: bytes, context: str):
        if len(master) != 32:
            raise ValueError("the data key must be 32 bytes (urlsafe base64)")
        # The HKDF labels are part of the stored data's format: identity's rows were
        # sealed under "gridgov identity …", so the context keeps that shape.
        self.context = context
        self._aead = AESGCM(_derive(master, f"gridgov {context} encryption".encode()))
        self._index_key = _derive(master, f"gridgov {context} blind index".encode())

    @classmethod
    def from_settings(cls, settings, context: str | None = None) -> DataKey:
        context = context or settings.service
        if settings.data_key:
            return cls(_b64decode(settings.data_key), context)
        return cls(_b64decode(_dev_key(Path(settings.data_dir) / f"{context}-data.key")), context)

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

    def seal_optional(self, value: str | None, purpose: str) -> str | None:
        return None if value is None else self.seal(value, purpose)

    def open_optional(self, token: str | None, purpose: str) -> str | None:
        return None if token is None else self.open(token, purpose)

    def index(self, value: str, purpose: str) -> str:
        return hmac.new(self._index_key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


# --- masking ---------------------------------------------------------------------------------

def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``; short numbers show nothing but their last two digits."""
    if phone is None:
        return None
    if len(phone) < 8:
        return "*" * max(len(phone) - 2, 1) + phone[-2:]
    return phone[:3] + "****" + phone[-4:]


def mask_national_id(number: str | None) -> str | None:
    return None if number is None else number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_name(name: str | None) -> str | None:
    """``王小明`` → ``王**``, ``王五`` → ``王*``, ``Alice`` → ``A****``: the family name stays."""
    if not name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


# --- keys ------------------------------------------------------------------------------------

def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _dev_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
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
