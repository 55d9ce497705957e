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

Rotation: ``GRIDGOV_DATA_KEY_PREVIOUS`` (comma-separated) lists older keys that still
open but never seal. A token names the key it was sealed under (``v2:<kid>:…``, the kid
a fingerprint of the service's subkey, so it says nothing of the master); ``v1:``
tokens from before kids were written are tried under every key (AES-GCM tells which
one fits). ``index`` is always the current key's; ``indexes`` gives every key's, for
lookups that must still find rows ``gridgov rekey`` has not re-indexed yet. Services
declare what they seal (:class:`Sealed`, on their ``ServiceSpec``) and
:mod:`gridkit.rekey` re-seals it under the current key.

Embedded/dev mode: when ``data_key`` is empty a key is generated once into
``<data_dir>/<service>-data.key`` (mode 0600) and a warning is logged. Every
process on the host reads the same file; a multi-host deployment MUST set
``GRIDGOV_DATA_KEY`` (hosts with different keys cannot read each other's rows).

    key = DataKey.from_settings(runtime.settings)        # context = settings.service
    sealed = key.seal("13812345678", "phone"); key.open(sealed, "phone")
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

VERSION = "v2"  # v2:<kid>:<base64 of nonce + ciphertext>
LEGACY = "v1"  # v1:<base64 …>, written before tokens named their key
KEYS = "GRIDGOV_DATA_KEY, GRIDGOV_DATA_KEY_PREVIOUS"


class Unopenable(ValueError):
    """The value opens under no key of the ring for this purpose: sealed under a key no
    longer listed, for another purpose or service, or altered."""


class _Key:
    """One master key's subkeys for one context."""

    def __init__(self, master: bytes, context: str):
        encryption = _derive(master, f"gridgov {context} encryption".encode())
        self.aead = AESGCM(encryption)
        self.index_key = _derive(master, f"gridgov {context} blind index".encode())
        # Names the key in tokens: a fingerprint of this context's subkey, not of the master.
        self.kid = hashlib.sha256(b"gridgov key id:" + encryption).hexdigest()[:12]

    def index(self, value: str, purpose: str) -> str:
        return hmac.new(self.index_key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


class DataKey:
    """The current key (seals, indexes) and the previous ones (still open; ``indexes``)."""

    def __init__(self, master: bytes, context: str, previous: Sequence[bytes] = ()):
        masters = list(dict.fromkeys([master, *previous]))  # the current key listed again is no second key
        if any(len(m) != 32 for m in masters):
            raise ValueError(f"every data key ({KEYS}) must be 32 bytes, urlsafe base64")
        # The HKDF labels are part of the stored data's format: identity's rows were
        # sealed under "gridgov identity …", so the context keeps that shape.
        self.context = context
        self._keys = [_Key(m, context) for m in masters]
        self._by_kid = {key.kid: key for key in self._keys}
        if len(self._by_kid) != len(self._keys):
            raise ValueError(f"two data keys ({KEYS}) have the same key id; generate another")
        self.kid = self._keys[0].kid

    @classmethod
    def from_settings(cls, settings, context: str | None = None) -> DataKey:
        context = context or settings.service
        current = settings.data_key or _dev_key(Path(settings.data_dir) / f"{context}-data.key")
        previous = [_b64decode(k) for k in settings.data_key_previous.split(",") if k.strip()]
        return cls(_b64decode(current), context, previous)

    def seal(self, value: str, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[0].aead.encrypt(nonce, value.encode(), purpose.encode())
        return f"{VERSION}:{self.kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, purpose: str) -> str:
        version, _, body = token.partition(":")
        if version == VERSION:
            kid, _, body = body.partition(":")
            if kid not in self._by_kid:
                raise Unopenable(f"sealed under the {self.context} data key {kid!r}, which is not in {KEYS}")
            candidates = [self._by_kid[kid]]
        elif version == LEGACY:
            candidates = self._keys  # AES-GCM authenticates: only the right key opens it
        else:
            raise Unopenable(f"not a sealed value (unknown version {version[:8]!r})")
        try:
            raw = base64.urlsafe_b64decode(body)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < 12 + 16:  # nonce and tag at least
            raise Unopenable("not a sealed value (too short or not base64)")
        for key in candidates:
            try:
                return key.aead.decrypt(raw[:12], raw[12:], purpose.encode()).decode()
            except InvalidTag:
                continue
        raise Unopenable(f"does not open as {purpose!r} under the {self.context} data keys in {KEYS}")

    def is_current(self, token: str) -> bool:
        """Sealed under the current key (``gridgov rekey`` leaves it as it is)."""
        return token.startswith(f"{VERSION}:{self.kid}:")

    def seal_optional(self, value: str | None, purpose: str) -> str | None:
        return None if value is None else self.seal(value, purpose)

    def open_optional(self, token: str | None, purpose: str) -> str | None:
        return None if token is None else self.open(token, purpose)

    def index(self, value: str, purpose: str) -> str:
        return self._keys[0].index(value, purpose)

    def indexes(self, value: str, purpose: str) -> list[str]:
        """The value's index under every key, the current one first: a lookup with these finds
        rows indexed before a rotation that ``gridgov rekey`` has not re-indexed yet."""
        return [key.index(value, purpose) for key in self._keys]


@dataclass(frozen=True)
class Sealed:
    """Where a service keeps values it sealed, for ``gridgov rekey`` (``ServiceSpec.sealed``).

    ``purpose`` is the one given to ``seal``; ``{column}`` in it stands for that column of
    the row (``"signing-key:{kid}"``). ``index``: the column beside it holding the value's
    blind index under the same purpose, recomputed with it. ``path`` (dotted): the value
    sits in a JSON document in the column (an event's body in the outbox), picked by
    ``where`` (columns equal to values). ``context``: sealed with another context's key
    than the service's own (the transit key a producer shares with its consumer)."""

    table: str
    column: str
    purpose: str
    index: str | None = None
    path: str | None = None
    where: Mapping[str, str] = field(default_factory=dict)
    context: str | None = None

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}" + (f"[{self.path}]" if self.path else "")

    @property
    def columns(self) -> list[str]:
        """Every column of the table it names."""
        named = [name for _, name, _, _ in Formatter().parse(self.purpose) if name]
        return [self.column, *([self.index] if self.index else []), *self.where, *named]


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
