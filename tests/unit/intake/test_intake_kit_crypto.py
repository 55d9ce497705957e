"""gridkit.crypto: per-service keys, sealing, blind index, masking."""

from __future__ import annotations

import base64

import pytest

from gridkit.config import Settings
from gridkit.crypto import DataKey, Unopenable, mask_name, mask_national_id, mask_phone, new_key
from identity.crypto import DataKey as IdentityKey


def test_a_value_sealed_by_one_service_does_not_open_in_another():
    master = base64.urlsafe_b64decode(new_key())
    sealed = DataKey(master, "intake").seal("13812345678", "phone")
    assert DataKey(master, "intake").open(sealed, "phone") == "13812345678"
    with pytest.raises(Unopenable):
        DataKey(master, "notify").open(sealed, "phone")
    assert DataKey(master, "intake").index("x", "phone") != DataKey(master, "notify").index("x", "phone")


def test_identity_keeps_its_derivation_so_its_stored_rows_still_open():
    master = bytes(32)
    assert IdentityKey(master).open(DataKey(master, "identity").seal("v", "phone"), "phone") == "v"


def test_dev_keys_are_per_service_files(tmp_path):
    key = DataKey.from_settings(Settings(service="intake", database_url="sqlite://", data_dir=tmp_path))
    assert (tmp_path / "intake-data.key").exists()
    again = DataKey.from_settings(Settings(service="intake", database_url="sqlite://", data_dir=tmp_path))
    assert again.open(key.seal("v", "p"), "p") == "v"
    assert key.seal_optional(None, "p") is None and key.open_optional(None, "p") is None


def test_masks():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("12345") == "***45"
    assert mask_name("王小明") == "王**" and mask_name("王五") == "王*" and mask_name("王") == "王*"
    assert mask_national_id("110101199003074512") == "110***********4512"
    assert mask_phone(None) is None and mask_name(None) is None
