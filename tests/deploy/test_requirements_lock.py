"""The image installs deploy/requirements.lock alone (``--no-deps --require-hashes``): a
dependency added to pyproject.toml without ``make lock`` would be missing from it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    return {normalised(name): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M)}


def test_every_dependency_of_pyproject_is_pinned_in_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [re.match(r"[A-Za-z0-9_.-]+", requirement)[0] for requirement in project["project"]["dependencies"]]
    wanted += [re.match(r"[A-Za-z0-9_.-]+", requirement)[0] for requirement in project["build-system"]["requires"]]
    missing = [name for name in wanted if normalised(name) not in pinned()]
    assert not missing, f"{missing} are not in deploy/requirements.lock: run `make lock`"


def test_every_pin_carries_its_hashes():
    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.split("\n\n", 1)[-1])
    unhashed = [entry.split(" ")[0] for entry in entries if "==" in entry and "--hash=sha256:" not in entry]
    assert not unhashed and len(pinned()) > 10, unhashed
