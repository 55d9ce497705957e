"""The rules of intake, in plain Python (no Flask, no SQLAlchemy).

Who may submit on which channel, when a petition is a duplicate, how its
status follows the case, who may withdraw, rate or ask for rework, who sees
what of a petition (its content, place and the reporter's contact), and how
each step reads in the resident's timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gridkit.auth import Principal
from gridkit.crypto import mask_name, mask_phone
from gridkit.i18n import local_time

# --- people -------------------------------------------------------------------------------

OPERATOR_ROLES = ("grid_worker", "community_admin", "street_admin", "county_admin")
PATROL_ROLES = ("grid_worker", "grid_head")
# Who may submit on each channel: residents themselves on the app, operators on a
# resident's behalf, grid staff on patrol (随手记).
CHANNEL_ROLES = {
    "app": ("resident",),
    "hotline": OPERATOR_ROLES,
    "mailbox": OPERATOR_ROLES,
    "window": OPERATOR_ROLES,
    "patrol": PATROL_ROLES,
}
OPERATOR_CHANNELS = ("hotline", "mailbox", "window")
UPLOADERS = tuple(sorted({r for roles in CHANNEL_ROLES.values() for r in roles}))
# Staff who may read any petition (masked unless they handle it).
STAFF_ROLES = ("grid_worker", "grid_head", "community_admin", "street_admin", "county_admin",
               "dept_officer", "sysadmin")
LIST_ROLES = ("community_admin", "street_admin", "county_admin")
MERGE_ROLES = ("community_admin", "street_admin", "county_admin")
CATEGORY_EDITORS = ("county_admin", "sysadmin")
# Unmasked contact for every non-anonymous petition (the county's hotline supervisors).
CONTACT_ROLES = ("county_admin",)

# --- numbers --------------------------------------------------------------------------------

MAX_DESCRIPTION = 2000
MAX_PHOTOS = 9
MAX_PHOTO_BYTES = 5 * 1024 * 1024
DUPLICATE_METRES = 100.0
DUPLICATE_WINDOW = timedelta(hours=48)
REWORK_WINDOW = timedelta(days=7)
REWORK_MAX_RATING = 2


class RuleBroken(ValueError):
    """A rule said no: ``status`` is the HTTP answer (403 or 409), the message the reason."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


# --- statuses -------------------------------------------------------------------------------

OPEN = ("submitted", "assigned", "claimed", "reopened")
TERMINAL = ("withdrawn", "merged")
# Progress only moves forward (events may arrive late or twice); rework moves it back on purpose.
RANK = {"submitted": 0, "assigned": 1, "claimed": 2, "reopened": 2, "resolved": 3, "closed": 4}


def next_status(current: str, proposed: str, *, backwards: bool = False) -> str:
    if current in TERMINAL:
        return current
    if backwards or RANK[proposed] > RANK[current]:
        return proposed
    return current


def check_withdraw(status: str) -> None:
    if status in ("submitted", "assigned"):
        return
    reasons = {
        "claimed": "a worker has already claimed it and is handling it",
        "reopened": "it is being reworked",
        "resolved": "it is already resolved",
        "closed": "it is already closed",
        "withdrawn": "it is already withdrawn",
        "merged": "it was merged into another petition",
    }
    raise RuleBroken(f"the petition cannot be withdrawn: {reasons.get(status, status)}")


def check_rating(status: str, already_rated: bool) -> None:
    if already_rated:
        raise RuleBroken("the petition has already been rated")
    if status != "resolved":
        raise RuleBroken(f"only a resolved petition can be rated; this one is {status}")


def check_rework(status: str, rating: int | None, resolved_at: datetime | None, now: datetime) -> None:
    """不满意重办: rated ≤ 2, within 7 days of the resolution (dispatch may have archived it)."""
    if status not in ("resolved", "closed") or resolved_at is None:
        raise RuleBroken(f"only a resolved petition can be reworked; this one is {status}")
    if rating is None:
        raise RuleBroken("rate the petition first; rework follows an unsatisfied rating (≤ 2)")
    if rating > REWORK_MAX_RATING:
        raise RuleBroken(f"rework follows an unsatisfied rating (≤ {REWORK_MAX_RATING}); you rated {rating}")
    if now - resolved_at > REWORK_WINDOW:
        raise RuleBroken("rework can be asked for within 7 days of the resolution")


def check_merge(duplicate_id: str, duplicate_status: str, kept_id: str, kept_status: str) -> None:
    if duplicate_id == kept_id:
        raise RuleBroken("a petition cannot be merged into itself")
    if duplicate_status not in OPEN:
        raise RuleBroken(f"only an open petition can be merged; this one is {duplicate_status}")
    if kept_status not in OPEN + ("resolved",):
        raise RuleBroken(f"the kept petition is {kept_status}; merge into an open one")


def submission_errors(body: dict, principal: Principal) -> dict[str, list[str]]:
    """What a channel requires of the body: operators name the resident and their contact,
    only patrol notes are closed on the spot, and those say what was done."""
    errors: dict[str, list[str]] = {}
    channel = body["channel"]
    contact = body.get("contact") or {}
    if channel in OPERATOR_CHANNELS:
        if not body.get("reporter_id"):
            errors["reporter_id"] = [f"required on the {channel} channel: the resident's user id"]
        if not contact.get("name") or not contact.get("phone"):
            errors["contact"] = [f"required on the {channel} channel: the resident's name and phone"]
    if channel == "app" and body.get("reporter_id") not in (None, principal.subject):
        errors["reporter_id"] = ["on the app a resident reports for themself"]
    if body.get("closed_on_spot") and channel != "patrol":
        errors["closed_on_spot"] = ["only a patrol note (随手记) is closed on the spot"]
    if body.get("closed_on_spot") and not body.get("result"):
        errors["result"] = ["say what was done on the spot"]
    if body.get("result") and not body.get("closed_on_spot"):
        errors["result"] = ["only a petition closed on the spot has a result"]
    if len(set(body.get("photos") or [])) != len(body.get("photos") or []):
        errors["photos"] = ["a photo is listed twice"]
    return errors


# --- who sees what --------------------------------------------------------------------------

def may_submit(principal: Principal, channel: str) -> bool:
    return principal.has_role(*CHANNEL_ROLES[channel])


def is_staff(principal: Principal) -> bool:
    return principal.has_role(*STAFF_ROLES)


def contact_view(principal: Principal, *, reporter_id: str, anonymous: bool, handlers: set[str],
                 submitted_by: str | None = None) -> str:
    """"full", "masked" or "hidden": what this viewer sees of the reporter and their contact.
    The operator who typed the contact in keeps seeing it; so do the case's handlers."""
    if principal.subject == reporter_id:
        return "full"
    if anonymous:
        return "hidden"  # anonymous: no staff sees who reported, handlers and county included
    if principal.subject in handlers or principal.subject == submitted_by or principal.has_role(*CONTACT_ROLES):
        return "full"
    return "masked"


def shown_contact(view: str, name: str | None, phone: str | None) -> dict | None:
    if view == "hidden":
        return None
    if view == "masked":
        return {"name": mask_name(name), "phone": mask_phone(phone), "masked": True}
    return {"name": name, "phone": phone, "masked": False}


@dataclass(frozen=True)
class Sight:
    """What one reader may see of one petition. Decided by :func:`sight` alone; every
    route (detail, lists, timeline, photos, follow) applies it."""

    relation: str  # reporter | staff | follower
    contact: str  # full | masked | hidden (contact_view)
    content: bool  # the description and the photos
    place: bool  # the exact place (point, building); without it only the grid is shown
    words: bool  # free text others wrote: staff's notes and results, the reporter's reasons and rating comment


# A follower's sight of a private report: what anyone following a petition sees at least.
PROGRESS_ONLY = Sight("follower", "hidden", content=False, place=False, words=False)


def sight(principal: Principal, *, reporter_id: str, followers: set[str], public: bool, anonymous: bool,
          handlers: set[str], submitted_by: str | None = None) -> Sight | None:
    """None when the principal may not read the petition at all. The reporter and staff
    see what they always saw. A follower ("me too", or merged in by staff) sees progress,
    not content: status, category, grid, rating and the timeline in standard words; the
    description, photos and exact place only when the reporter made the report public;
    never the contact, anyone's own words or the rating comment."""
    if principal.subject == reporter_id:
        return Sight("reporter", "full", content=True, place=True, words=True)
    if is_staff(principal):
        return Sight("staff", contact_view(principal, reporter_id=reporter_id, anonymous=anonymous,
                                           handlers=handlers, submitted_by=submitted_by),
                     content=True, place=True, words=True)
    if principal.subject in followers:
        return Sight("follower", "hidden", content=True, place=True, words=False) if public else PROGRESS_ONLY
    return None


def may_see_photo(principal: Principal, uploaded_by: str, petition: Sight | None) -> bool:
    """Its uploader, staff, and whoever sees the content of the petition it belongs to."""
    return principal.subject == uploaded_by or is_staff(principal) or (petition is not None and petition.content)


# What a reader who may not read others' words sees of a step that carries some.
FREE_TEXT = ("text", "result", "reason", "comment")
PLAIN = {
    "progressed:note": ("办理有新进展", "There is progress"),
    "progressed:returned": ("已退回重新分派", "Returned for re-assignment"),
    "submitted_on_spot": ("网格员随手记，已当场办结", "Logged on patrol and handled on the spot"),
    "resolved": ("已办结", "Resolved"),
    "reopened": ("已重新办理", "Reopened for rework"),
    "rework_requested": ("居民申请不满意重办", "The resident asked for rework"),
}


def step_text(kind: str, params: dict, lang: str, seen: Sight, *, tz: ZoneInfo | None = None) -> str:
    """One timeline step as this reader may read it: in full (reporter, staff), or as a
    standard progress line without staff's or the reporter's own words (followers)."""
    tz = tz or DEFAULT_TIMEZONE
    if seen.words:
        return describe(kind, params, lang, own=seen.relation == "reporter", tz=tz)
    key = f"progressed:{params.get('step') if params.get('step') in PROGRESS else 'note'}" \
        if kind == "progressed" else kind
    if key in PLAIN:
        return PLAIN[key][lang == "en"]
    return describe(kind, {k: v for k, v in params.items() if k not in FREE_TEXT}, lang, own=False, tz=tz)


# --- places ---------------------------------------------------------------------------------

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def box_around(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    """A lon/lat box containing the circle: a cheap SQL prefilter before the exact distance."""
    dlat = math.degrees(metres / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat


@dataclass(frozen=True)
class Nearby:
    id: str
    status: str
    lon: float
    lat: float
    submitted_at: datetime
    category: str


def similar(lon: float, lat: float, now: datetime, candidates: list[Nearby]) -> list[dict]:
    """Open petitions of the same category within 100 m and 48 h, nearest first ("me too").
    Each says what a resident needs to decide (id to follow it, category, distance, status,
    when), never what its reporter wrote, showed or who they are."""
    found = []
    for c in candidates:
        d = distance_m(lon, lat, c.lon, c.lat)
        if c.status in OPEN and d <= DUPLICATE_METRES and now - c.submitted_at <= DUPLICATE_WINDOW:
            found.append({"id": c.id, "category": c.category, "distance_m": round(d, 1), "status": c.status,
                          "submitted_at": c.submitted_at.isoformat()})
    return sorted(found, key=lambda f: f["distance_m"])


# --- photos ---------------------------------------------------------------------------------

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")


def sniff_image(head: bytes) -> str | None:
    """The image type its magic bytes say, whatever the client claimed."""
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


# --- the timeline ---------------------------------------------------------------------------

DEFAULT_TIMEZONE = ZoneInfo("Asia/Shanghai")
LEVEL_NAMES = {"grid": ("网格", "grid"), "community": ("社区", "community"),
               "street": ("街道", "street"), "county": ("县级部门", "county")}
PROGRESS = {
    "note": ("办理进展：{text}", "Progress: {text}"),
    "photo": ("办理人员上传了现场照片", "The handler added photos from the site"),
    "extension_requested": ("办理人员申请延期", "The handler asked for more time"),
    "extension_approved": ("延期已批准，新的办理期限 {due}", "More time approved; now due {due}"),
    "extension_refused": ("延期申请未获批准", "The request for more time was refused"),
    "returned": ("已退回重新分派：{text}", "Returned for re-assignment: {text}"),
}
TEXTS = {
    "submitted": ("诉求已提交（{channel}），等待分派", "Petition submitted ({channel}); awaiting assignment"),
    "submitted_on_spot": ("网格员随手记，已当场办结：{result}", "Logged on patrol and handled on the spot: {result}"),
    "opened": ("已受理，正在分派", "Accepted; being routed"),
    "opened_catch_all": ("已受理，转县级统一受理平台分派", "Accepted; passed to the county desk for routing"),
    "assigned": ("已分派至 {grid}", "Assigned to grid {grid}"),
    "assigned_desk": ("已分派至县级统一受理平台", "Assigned to the county desk"),
    "claimed": ("工作人员已认领，正在办理", "A worker has claimed it and is on it"),
    "escalated": ("已上报至{level}处理", "Passed up to the {level} level"),
    "supervised": ("已督办，由{level}限期办理", "Under supervision at the {level} level, with a deadline"),
    "handed_back": ("原办理人员有变动，正在重新安排工作人员办理",
                    "The worker handling it has changed; someone new is being arranged"),
    "reassigned": ("已改派其他工作人员办理", "Passed to another worker"),
    "whistled": ("已吹哨，{departments} 报到联合处理", "Whistle blown: {departments} called in to help"),
    "reported_in": ("{department} 已报到", "{department} reported in"),
    "resolved": ("已办结：{result}", "Resolved: {result}"),
    "reopened": ("已重新办理：{reason}", "Reopened for rework: {reason}"),
    "closed": ("已归档", "Closed"),
    "deadline_missed": ("办理超时，已督办", "Running late; supervisors have been told"),
    "withdrawn": ("您已撤回诉求", "You withdrew the petition"),
    "rated": ("您的评价：{rating} 星", "Your rating: {rating} stars"),
    "rework_requested": ("您申请不满意重办：{reason}", "You asked for rework: {reason}"),
    "merged": ("已与相同诉求合并，办理进度见合并后的诉求", "Merged with the same problem; follow it there"),
    "merged_in": ("另一位居民反映的相同诉求已并入本诉求", "A neighbour's report of the same problem was merged in"),
    "followed": ("又有居民反映了同一问题", "Another resident reported the same problem"),
}
# The reporter reads "you"; followers and staff read about "the resident".
OTHERS = {
    "withdrawn": ("居民已撤回诉求", "The resident withdrew the petition"),
    "rated": ("居民评价：{rating} 星", "The resident rated it {rating} stars"),
    "rework_requested": ("居民申请不满意重办：{reason}", "The resident asked for rework: {reason}"),
}
CHANNEL_NAMES = {"app": ("小程序", "app"), "hotline": ("热线", "hotline"), "mailbox": ("心愿邮箱", "mailbox"),
                 "window": ("服务窗口", "service window"), "patrol": ("网格巡查", "patrol")}


def describe(kind: str, params: dict, lang: str, *, own: bool = True, tz: ZoneInfo = DEFAULT_TIMEZONE) -> str:
    """One timeline step in plain words. Params hold ids and staff words, never staff phones;
    times (a new due time) read in local time ``tz``, as the language writes them."""
    en = lang == "en"
    p = dict(params)
    if p.get("due"):
        p["due"] = local_time(p["due"], lang, tz)
    if "channel" in p:
        p["channel"] = CHANNEL_NAMES.get(p["channel"], (p["channel"],) * 2)[en]
    if "level" in p:
        p["level"] = p.get("division") or LEVEL_NAMES.get(p["level"], (p["level"],) * 2)[en]
    if "departments" in p:
        p["departments"] = ("、" if not en else ", ").join(p["departments"])
    if kind == "progressed":
        template = PROGRESS.get(p.get("step", "note"), PROGRESS["note"])[en]
    elif not own and kind in OTHERS:
        template = OTHERS[kind][en]
    else:
        template = TEXTS[kind][en]
    return template.format_map(_Blank(p))


class _Blank(dict):
    def __missing__(self, key):  # a missing detail reads as nothing, never a crash
        return ""
