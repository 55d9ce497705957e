"""Who hears what: one table, plain Python (no Flask, no SQLAlchemy).

Each rule names the event, the kind of notice it makes, and whom to tell.
Events name people by user id, so most audiences are read straight from the
event; the two that are not (a whistled department's officers, a case's
handler) come from a :class:`Directory` the caller provides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from contracts.dispatch import (
    CASE_ASSIGNED,
    CASE_CLAIMED,
    CASE_CLOSED,
    CASE_ESCALATED,
    CASE_HANDED_BACK,
    CASE_OPENED,
    CASE_PROGRESSED,
    CASE_REASSIGNED,
    CASE_REOPENED,
    CASE_RESOLVED,
    CASE_UNATTENDED,
    CASE_WHISTLED,
    DEADLINE_APPROACHING,
    DEADLINE_MISSED,
)
from contracts.intake import PETITION_MERGED, PETITION_RATED
from contracts.points import (
    ACCOUNT_EXPIRED,
    AWARD_GRANTED,
    REDEMPTION_EXPIRED,
    REDEMPTION_HANDED_OVER,
    REDEMPTION_HELD,
)
from gridkit.events import EventType


class Directory(Protocol):
    """What notify knows about people beyond the event itself (local projections)."""

    def officers_of(self, department: str) -> list[str]: ...

    def handler_of_case(self, case_id: str) -> str | None: ...

    def handler_of_petition(self, petition_id: str) -> str | None: ...

    def case_of_petition(self, petition_id: str) -> str | None: ...


Audience = Callable[[dict, Directory], Iterable[str | None]]


def resident(data: dict, _: Directory) -> list[str]:
    return [data["resident"]]


def offered_to(data: dict, _: Directory) -> list[str]:
    return data["offered_to"]


def reporter(data: dict, _: Directory) -> list[str]:
    return [data["reporter_id"]]


def named_in_deadline(data: dict, _: Directory) -> list[str]:
    return data["notify"]


def named_to_notify(data: dict, _: Directory) -> list[str]:
    return data.get("notify") or []


def new_handler(data: dict, _: Directory) -> list[str]:
    return [data["to_handler"]]


def old_handler(data: dict, _: Directory) -> list[str | None]:
    return [data["from_handler"]]


def whistled_officers(data: dict, directory: Directory) -> list[str]:
    return [officer for code in data["departments"] for officer in directory.officers_of(code)]


def case_handler(data: dict, directory: Directory) -> list[str | None]:
    return [directory.handler_of_case(data["case_id"])]


def petition_handler(data: dict, directory: Directory) -> list[str | None]:
    return [directory.handler_of_petition(data["petition_id"])]


# Handling steps a resident cares about; extension requests and returns are staff business.
RESIDENT_PROGRESS = ("note", "photo", "extension_approved")


@dataclass(frozen=True)
class Rule:
    event: EventType
    kind: str
    audience: Audience
    critical: bool = False
    when: Callable[[dict], bool] = field(default=lambda data: True)


RULES: tuple[Rule, ...] = (
    # grid workers (or a rung's staff) when a case is offered to them to claim
    Rule(CASE_ASSIGNED, "case_offered", offered_to),
    # supervisors one rung up when the case climbs the ladder
    Rule(CASE_ESCALATED, "case_escalated", offered_to),
    # 督办: the handler (or those who must act) and the supervisors at the new level
    Rule(CASE_ESCALATED, "case_supervised", named_to_notify, when=lambda d: d["reason"] == "manual"),
    # someone left: the grid head (or the rung up) has the case to reassign; the resident
    # hears that whoever handled it changed
    Rule(CASE_HANDED_BACK, "case_handed_back", offered_to),
    Rule(CASE_HANDED_BACK, "case_handler_changed", reporter, when=lambda d: d["handler"] is not None),
    # a supervisor moved the case: the new handler and the one it was taken from
    Rule(CASE_REASSIGNED, "case_reassigned", new_handler),
    Rule(CASE_REASSIGNED, "case_reassigned_away", old_handler),
    # nobody can take the case: the county admins (the sysadmins when there is none)
    Rule(CASE_UNATTENDED, "case_unattended", named_to_notify, critical=True),
    # the resident at each step
    Rule(CASE_OPENED, "case_opened", reporter),
    Rule(CASE_CLAIMED, "case_claimed", reporter),
    Rule(CASE_PROGRESSED, "case_progressed", reporter, when=lambda d: d["kind"] in RESIDENT_PROGRESS),
    Rule(CASE_RESOLVED, "case_resolved", reporter),
    Rule(CASE_REOPENED, "case_reopened", reporter),
    Rule(CASE_CLOSED, "case_closed", reporter),
    Rule(PETITION_MERGED, "petition_merged", reporter),
    # the handler when the resident rates the work or asks for rework (不满意重办)
    Rule(PETITION_RATED, "petition_rated", petition_handler),
    Rule(CASE_REOPENED, "rework_requested", case_handler),
    # departments when whistled (吹哨): every officer of each department
    Rule(CASE_WHISTLED, "case_whistled", whistled_officers, critical=True),
    # the holder and supervisors named by dispatch, before and after a deadline
    Rule(DEADLINE_APPROACHING, "deadline_approaching", named_in_deadline),
    Rule(DEADLINE_MISSED, "deadline_missed", named_in_deadline, critical=True),
    # residents when they earn points, and when unspent points expire (the person, or the
    # household's members points names)
    Rule(AWARD_GRANTED, "points_earned", named_to_notify),
    Rule(ACCOUNT_EXPIRED, "points_expired", named_to_notify),
    # points supermarkets: the resident whose items wait, were handed over, or whose hold expired
    Rule(REDEMPTION_HELD, "redemption_held", resident),
    Rule(REDEMPTION_HANDED_OVER, "redemption_handed_over", resident),
    Rule(REDEMPTION_EXPIRED, "redemption_expired", resident),
)

KINDS: tuple[str, ...] = tuple(rule.kind for rule in RULES)
CRITICAL_KINDS: frozenset[str] = frozenset(rule.kind for rule in RULES if rule.critical)
EVENTS: tuple[EventType, ...] = tuple(dict.fromkeys(rule.event for rule in RULES))


@dataclass(frozen=True)
class Addressed:
    """One notice to write: a kind for a person."""

    recipient_id: str
    kind: str
    critical: bool


def address(event_type: str, data: dict, directory: Directory) -> list[Addressed]:
    """Every (person, kind) an event must reach, each person once per kind.

    Nobody is told about their own action (a grid worker who logs a patrol
    note and claims it is both reporter and claimer).
    """
    actor = data.get("by")
    notices: list[Addressed] = []
    for rule in RULES:
        if rule.event.type != event_type or not rule.when(data):
            continue
        for person in dict.fromkeys(rule.audience(data, directory)):
            if person and person != actor:
                notices.append(Addressed(person, rule.kind, rule.critical))
    return notices


# ---------------------------------------------------------------------------
# channels and preferences
# ---------------------------------------------------------------------------

OUTSIDE_CHANNELS = ("email", "sms")  # the inbox always receives every notice
DEFAULT_CHANNELS = {"email": True, "sms": False}
LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True)
class Preferences:
    language: str = "zh-CN"
    channels: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    muted_kinds: frozenset[str] = frozenset()

    def wants(self, channel: str) -> bool:
        return self.channels.get(channel, DEFAULT_CHANNELS[channel])


def channels_for(kind: str, preferences: Preferences, reachable: Iterable[str],
                 available: Iterable[str]) -> list[str]:
    """Outside channels a notice goes over.

    ``reachable``: channels the person registered a contact for; ``available``:
    channels this deployment has configured. A critical notice cannot be muted:
    it ignores mutes and channel switches and goes wherever the person can be reached.
    """
    reachable, available = set(reachable), set(available)
    chosen = []
    for channel in OUTSIDE_CHANNELS:
        if channel not in reachable or channel not in available:
            continue
        if kind in CRITICAL_KINDS or (preferences.wants(channel) and kind not in preferences.muted_kinds):
            chosen.append(channel)
    return chosen
