"""One template per notice kind, in zh-CN (default) and English.

Plain ``str.format`` templates with named fields taken from the event: case
and petition numbers, steps, levels, deadlines, departments, the handler's
result. Never names, phones or addresses (events carry none, and a notice
says no more than its recipient may see).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gridkit.i18n import local_time

from .rules import KINDS

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "case_offered": {
        "zh-CN": ("新工单待认领 {ref}", "工单 {ref} 已派至您所在网格，请在 {claim_due} 前认领。"),
        "en": ("New case to claim {ref}", "Case {ref} was offered to your grid; claim it before {claim_due}."),
    },
    "case_escalated": {
        "zh-CN": ("工单已升级至{level} {ref}", "工单 {ref} 因{reason}已由{from_level}升级至{level}，请在 {claim_due} 前认领。"),
        "en": ("Case escalated to {level} {ref}", "Case {ref} climbed from {from_level} to {level} ({reason}); claim it before {claim_due}."),
    },
    "case_supervised": {
        "zh-CN": ("工单被督办 {ref}", "工单 {ref} 已被督办，升级至{level}：{text}。请在 {due} 前处理。"),
        "en": ("Case under supervision {ref}", "Case {ref} is under supervision at the {level} level: {text}. "
               "Act on it before {due}."),
    },
    "case_handed_back": {
        "zh-CN": ("工单待重新分派 {ref}", "工单 {ref} 的工作人员已离岗，工单已交回您，请在 {claim_due} 前认领或改派。"),
        "en": ("Case back to reassign {ref}", "The worker on case {ref} has left and it is back with you; "
               "claim or reassign it before {claim_due}."),
    },
    "case_handler_changed": {
        "zh-CN": ("办理人员变动 {ref}", "您的诉求（工单 {ref}）原办理人员有变动，正在重新安排工作人员办理。"),
        "en": ("New worker for {ref}", "The worker handling your case {ref} has changed; someone new is being "
               "arranged."),
    },
    "case_reassigned": {
        "zh-CN": ("工单改派给您 {ref}", "工单 {ref} 已改派给您办理：{reason}。请在 {handle_due} 前办结。"),
        "en": ("Case reassigned to you {ref}", "Case {ref} was reassigned to you: {reason}. It is due by {handle_due}."),
    },
    "case_reassigned_away": {
        "zh-CN": ("工单已改派 {ref}", "工单 {ref} 已改派其他工作人员办理：{reason}"),
        "en": ("Case reassigned {ref}", "Case {ref} was reassigned to another worker: {reason}"),
    },
    "case_unattended": {
        "zh-CN": ("工单无人受理 {ref}", "工单 {ref}（{queue}）{reason}，正在空等。请尽快安排人员，或直接改派。"),
        "en": ("Nobody can take case {ref}", "Case {ref} ({queue}) has {reason} and is waiting. "
               "Staff it or reassign it."),
    },
    "case_opened": {
        "zh-CN": ("诉求已受理 {ref}", "您的诉求已受理（工单 {ref}），我们将尽快安排处理。"),
        "en": ("Petition received {ref}", "Your petition was received as case {ref}; it will be handled soon."),
    },
    "case_claimed": {
        "zh-CN": ("工单已认领 {ref}", "网格员已认领您的诉求（工单 {ref}），预计 {handle_due} 前办结。"),
        "en": ("Case claimed {ref}", "A grid worker claimed your case {ref}; it is due by {handle_due}."),
    },
    "case_progressed": {
        "zh-CN": ("办理进展 {ref}", "工单 {ref} 有新进展：{text}"),
        "en": ("Progress on {ref}", "Case {ref} moved on: {text}"),
    },
    "case_resolved": {
        "zh-CN": ("诉求已办结 {ref}", "工单 {ref} 已办结：{result}。请对办理结果进行评价。"),
        "en": ("Case resolved {ref}", "Case {ref} was resolved: {result}. Please rate the result."),
    },
    "case_reopened": {
        "zh-CN": ("工单已重新办理 {ref}", "根据您的意见，工单 {ref} 已重新办理。"),
        "en": ("Case reopened {ref}", "Following your feedback, case {ref} is being handled again."),
    },
    "case_closed": {
        "zh-CN": ("工单已归档 {ref}", "工单 {ref} 已归档（{outcome}）。感谢您的参与。"),
        "en": ("Case closed {ref}", "Case {ref} is closed ({outcome}). Thank you."),
    },
    "petition_merged": {
        "zh-CN": ("诉求已合并 {ref}", "您的诉求（工单 {ref}）与相同问题合并办理（工单 {into_ref}），办理进展将同步通知您。"),
        "en": ("Petition merged {ref}", "Your case {ref} is handled together with case {into_ref}; you will hear of its progress."),
    },
    "petition_rated": {
        "zh-CN": ("居民已评价 {ref}", "居民对工单 {ref} 的评价：{rating} 星。"),
        "en": ("Resident rated {ref}", "The resident rated case {ref}: {rating} of 5."),
    },
    "rework_requested": {
        "zh-CN": ("不满意重办 {ref}", "居民对工单 {ref} 不满意，申请重办：{reason}"),
        "en": ("Rework requested {ref}", "The resident is not satisfied with case {ref} and asks for rework: {reason}"),
    },
    "case_whistled": {
        "zh-CN": ("吹哨报到 {ref}", "工单 {ref} 吹哨，请贵部门（{departments}）在 {report_in_due} 前报到。"),
        "en": ("Whistle: report in {ref}", "Case {ref} was whistled for {departments}; report in before {report_in_due}."),
    },
    "deadline_approaching": {
        "zh-CN": ("即将超时 {ref}", "工单 {ref} 的{step}环节将于 {due} 到期。"),
        "en": ("Deadline approaching {ref}", "The {step} step of case {ref} is due at {due}."),
    },
    "deadline_missed": {
        "zh-CN": ("已超时 {ref}", "工单 {ref} 的{step}环节已于 {due} 超时，请督办。"),
        "en": ("Deadline missed {ref}", "The {step} step of case {ref} was due at {due} and is overdue; please follow up."),
    },
    "points_earned": {
        "zh-CN": ("获得积分 +{amount}", "因{reason}获得 {amount} 积分，账户余额 {balance} 积分。"),
        "en": ("Points earned +{amount}", "You earned {amount} points for {reason}; the balance is {balance}."),
    },
    "points_expired": {
        "zh-CN": ("积分到期 -{amount}", "{earned_before} 前获得且未使用的 {amount} 积分已到期，账户余额 {balance} 积分。"),
        "en": ("Points expired -{amount}", "{amount} points earned before {earned_before} and not spent have expired; "
               "the balance is {balance}."),
    },
    "redemption_held": {
        "zh-CN": ("积分兑换待领取 {ref}", "您在{supermarket}兑换的 {pieces} 件商品已预留，{amount} 积分已冻结。"
                  "请在 {expires_at} 前到店出示领取码。"),
        "en": ("Redemption waiting {ref}", "{pieces} piece(s) are kept for you at {supermarket} and {amount} points "
               "are held. Show your hand-over code there before {expires_at}."),
    },
    "redemption_handed_over": {
        "zh-CN": ("积分兑换已领取 {ref}", "您已在{supermarket}领取 {pieces} 件商品，使用 {amount} 积分。"),
        "en": ("Redemption handed over {ref}", "You received {pieces} piece(s) at {supermarket} for {amount} points."),
    },
    "redemption_expired": {
        "zh-CN": ("积分兑换已过期 {ref}", "您在{supermarket}预留的商品未在 {expires_at} 前领取，{amount} 积分已退回。"),
        "en": ("Redemption expired {ref}", "The items kept for you at {supermarket} were not fetched by {expires_at}; "
               "your {amount} points are back."),
    },
}

LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "grid": "网格", "community": "社区", "street": "街道", "county": "区县",
        "approve": "审批", "claim": "认领", "handle": "办理", "report_in": "报到", "review": "审核",
        "claim_deadline": "超时未认领", "handle_deadline": "超时未办结", "manual": "人工督办",
        "rated": "已评价", "rating_timeout": "评价超时", "withdrawn": "已撤回", "merged": "已合并",
        "on_spot": "现场办结", "photo": "已上传现场照片", "extension_approved": "办理期限已延长至 {handle_due}",
        "nobody_to_offer": "无人可派", "no_approver": "无人审批", "catch_all": "县级兜底队列", "grid_queue": "网格",
        "petition": "诉求办结", "activity": "参加社区活动", "hygiene": "评为清洁户", "adjustment": "社区奖励",
        "service_order": "志愿服务",
    },
    "en": {
        "grid": "grid", "community": "community", "street": "street", "county": "county",
        "approve": "approval", "claim": "claim", "handle": "handling", "report_in": "report-in",
        "review": "review", "claim_deadline": "not claimed in time",
        "handle_deadline": "not handled in time", "manual": "escalated by a supervisor",
        "rated": "rated", "rating_timeout": "no rating in time", "withdrawn": "withdrawn",
        "merged": "merged", "on_spot": "handled on the spot", "photo": "photos were added",
        "extension_approved": "the deadline was extended to {handle_due}",
        "nobody_to_offer": "nobody to offer it to", "no_approver": "nobody to approve it",
        "catch_all": "county catch-all queue", "grid_queue": "grid",
        "petition": "a resolved petition", "activity": "a community activity", "hygiene": "a clean household",
        "adjustment": "an award from your community", "service_order": "volunteer service",
    },
}

LABELLED = ("level", "from_level", "step", "reason", "outcome")
WHEN = ("claim_due", "handle_due", "report_in_due", "due", "earned_before", "expires_at")
DEFAULT_TIMEZONE = ZoneInfo("Asia/Shanghai")


def reference(identifier: str | None) -> str:
    """A short, readable case number: the last 8 hex digits of its id.
    (The first block of a time-ordered UUIDv7 is a timestamp, shared by every
    case opened within the same minute; the tail is random.)"""
    return (identifier or "").replace("-", "")[-8:].upper()


def render(kind: str, language: str, data: dict, *, tz: ZoneInfo = DEFAULT_TIMEZONE) -> tuple[str, str]:
    """(title, body) of a notice of ``kind`` in ``language`` from the event's data.

    Every notice names its case the same way: ``reference(case_id)``. Intake's events
    carry only petition ids; notify adds ``case_id`` / ``into_case_id`` from its
    projection (handlers.py), and falls back to the petition's id while it knows none."""
    language = language if language in LABELS else "zh-CN"
    labels = LABELS[language]
    fields = {key: value for key, value in data.items() if isinstance(value, str | int | float)}
    for key in WHEN:
        if isinstance(data.get(key), datetime):
            fields[key] = local_time(data[key], language, tz)
    for key in LABELLED:
        if key in fields:
            fields[key] = labels.get(fields[key], fields[key])
    fields["ref"] = reference(data.get("case_id") or data.get("petition_id") or data.get("redemption_id"))
    fields["into_ref"] = reference(data.get("into_case_id") or data.get("into_petition_id"))
    fields["departments"] = "、".join(data.get("departments", [])) if language == "zh-CN" \
        else ", ".join(data.get("departments", []))
    if kind == "case_progressed" and not data.get("text"):
        fields["text"] = labels.get(data.get("kind", ""), "").format_map(fields)
    if kind == "case_supervised" and not data.get("text"):
        fields["text"] = labels["manual"]
    if kind == "case_unattended":
        fields["queue"] = labels["catch_all" if data.get("catch_all") else "grid_queue"]
    title, body = TEMPLATES[kind][language]
    return title.format_map(fields)[:200], body.format_map(fields)


assert set(TEMPLATES) == set(KINDS), "one template per notice kind"


# --- one-time codes (identity.code.issued): text messages, not notices ----------------------

CODE_TEXTS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "code": "【网格治理】验证码 {code}，用于{action}，{minutes}分钟内有效。请勿告诉他人；如非本人操作，请忽略。",
        "account_exists": "【网格治理】有人用本号码申请注册，但本号码已有账号。请直接登录；忘记密码可申请验证码重置密码"
                          "（工作人员请联系管理员）。如非本人操作，请忽略。",
    },
    "en": {
        "code": "gridgov: your code is {code}, to {action}, valid for {minutes} minutes. Never share it; "
                "if you did not ask for it, ignore this message.",
        "account_exists": "gridgov: someone asked to register this number, but it already has an account. "
                          "Log in, or reset a forgotten password with a code (staff: ask your admin). "
                          "If it was not you, ignore this message.",
    },
}
CODE_ACTIONS: dict[str, dict[str, str]] = {
    "zh-CN": {"register": "注册", "login": "登录", "reset": "重置密码"},
    "en": {"register": "register", "login": "log in", "reset": "reset your password"},
}


def render_code(message: str, purpose: str, language: str, *, code: str | None, minutes: int) -> str:
    """The text of a code message (``code`` or ``account_exists``) in ``language``."""
    language = language if language in CODE_TEXTS else "zh-CN"
    return CODE_TEXTS[language][message].format(code=code, minutes=minutes,
                                                action=CODE_ACTIONS[language][purpose])
