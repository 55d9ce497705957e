"""The demo county's points (``make run``, embedded on SQLite): supermarkets, a catalogue,
months of awards and redemptions — through the use cases, so the audit holds."""

from sqlalchemy import func, select

from points import awards, demo, figures
from points.tables import AwardRule, Redemption, Supermarket, Transfer

COMMUNITIES = [{"code": "DL-01-01", "name": "龙泉社区"}, {"code": "DL-01-02", "name": "文献社区"}]


def test_the_demo_programme_lives_and_seeding_twice_changes_nothing(points_sqlite):
    share = demo.seed(points_sqlite, {"communities": COMMUNITIES, "resident_id": "resident-1"})
    assert share["people"][0]["grants"][0][0] == "supermarket_keeper"
    with points_sqlite.db.sessions() as session:
        statuses = dict(session.execute(select(Redemption.status, func.count()).group_by(Redemption.status)).all())
        per_community = figures.programme_figures(session)
        mine = session.execute(select(Redemption).where(Redemption.resident == "resident-1",
                                                        Redemption.status == "held")).scalars().all()
        board = figures.leaderboard(session, "DL-01-01", figures.month_of_now(), "households")
        rules = {r["id"]: r for r in awards.rules_of(session, "DL-01-01")}
        points_of = dict(session.execute(select(AwardRule.id, AwardRule.points)).all())
        given = session.execute(select(Transfer.source, Transfer.amount).where(Transfer.code == "award")).all()
        codes = set(session.scalars(select(Transfer.code).where(Transfer.code != "redemption")))
    assert statuses.get("handed_over", 0) > 10 and statuses.get("held", 0) > 0, statuses
    for code in ("DL-01-01", "DL-01-02"):
        f = per_community[code]
        assert f["issued"] > 0 and f["redeemed"] > 0 and f["supermarkets"] == 1
        assert f["issued"] == f["outstanding"] + f["redeemed"] and 0 < f["held"] <= f["outstanding"]
        assert 0.8 <= f["share"] <= 0.88
    assert mine, "the demo resident has a redemption waiting, with its code"
    assert board and board[0]["points"] >= board[-1]["points"]
    # the awards are earning's: each one its rule's, once per fact (awards.grant's source)
    assert {r["event"] for r in rules.values()} == {
        "points.household.inspected", "points.activity.attended", "dispatch.case.closed"}
    assert codes == {"award"} and given
    for source, amount in given:
        kind, rule_id, _ = source.split(":", 2)
        assert kind == "award" and amount == points_of[rule_id]

    again = demo.seed(points_sqlite, {"communities": COMMUNITIES, "resident_id": "resident-1"})
    assert again["people"] == share["people"]
    with points_sqlite.db.sessions() as session:
        assert session.execute(select(func.count()).select_from(Supermarket)).scalar() == 2
        assert dict(session.execute(select(Redemption.status, func.count())
                                    .group_by(Redemption.status)).all()) == statuses

