"""The payroll decides the same from the read models as from the aggregates.

One history is recorded twice on the same kind of database: plain months, arrears of
months already past, a bank return and its re-issue, a retroactive increase (a top-up),
a retroactive suspension whose overpayment is recovered by offset, a suspension and a
termination. One copy is paid on the aggregates alone, the other by
:class:`projections.payroll.ReadModelPayroll`. The events they record must be the same
(but for their recorded times), and the second copy's read models must equal a replay.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from ledger.application import LedgerApp
from ledger.values import Month
from projections.payroll import ReadModelPayroll, candidates
from projections.runner import Projections
from projections.verify import verify
from tests.conftest import seed_case

JAN, FEB, MAR, APR = Month(2023, 1), Month(2023, 2), Month(2023, 3), Month(2023, 4)
DAY = date(2023, 1, 20)
RUNNER, APPROVER, VERIFIER = "zhao.min", "li.na", "zhang.wei"


def _payroll(app: LedgerApp, proj: Projections, month: Month, fast: bool) -> tuple[list[str], ReadModelPayroll | None]:
    proj.catch_up()
    with app.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        items = candidates(conn, month)
    payer = ReadModelPayroll(app, proj) if fast else None
    result = app.run_payroll(month, None, items, operator=RUNNER, effective=month.first_day(), chunk=3,
                             pay_chunk=payer)
    proj.catch_up()
    return result.issued, payer


def _history(url: str, fast: bool) -> tuple[LedgerApp, Projections, dict[str, int]]:
    app = LedgerApp(url, clock=lambda: date(2023, 4, 30))
    proj = Projections(app)
    for n in range(1, 8):
        seed_case(app, f"U{n}", f"H{n}", persons=1 + n % 3, amount_fen=40000 + 5000 * n,
                  first=JAN if n != 2 else FEB)
    counts = {"read_models": 0, "aggregates": 0}

    def pay(month: Month) -> list[str]:
        issued, payer = _payroll(app, proj, month, fast)
        if payer is not None:
            counts["read_models"] += payer.from_read_models
            counts["aggregates"] += payer.from_aggregates
        return issued

    pay(JAN)
    app.return_payment("P-U4-202301-1", "account closed", operator=RUNNER, effective=DAY)
    app.verify("U5", income_fen=10000, assets_ok=True, verifier=VERIFIER, valid_until=date(2023, 12, 31),
               operator=VERIFIER, effective=DAY)
    app.adjust("U5", amount_fen=120000, from_month=JAN, operator=APPROVER, effective=DAY)  # a top-up for January
    app.suspend("U3", "income under review", JAN, operator=APPROVER, effective=DAY)  # January paid: overpaid
    app.resume("U3", FEB, operator=APPROVER, effective=DAY)
    app.suspend("U6", "moved away", FEB, operator=APPROVER, effective=DAY)
    app.terminate("U7", "income above the standard", MAR, operator=APPROVER, effective=DAY)
    pay(MAR)  # February is owed as arrears beside March; U2 starts in February
    app.return_payment("P-U1-202303-1", "account frozen", operator=RUNNER, effective=date(2023, 3, 20))
    pay(APR)
    return app, proj, counts


def _events(app: LedgerApp) -> list[tuple[str, str, int, Any]]:
    """Every stored event by aggregate and version, without its recorded time."""
    out = []
    for n in app.recorder.select_notifications(start=1, limit=100_000):
        state = json.loads(n.state)
        state.pop("timestamp")
        if n.topic.endswith("PayrollBatch.PaymentsAdded"):
            state["refs"] = sorted(state["refs"])
        out.append((n.topic, str(n.originator_id), n.originator_version, state))
    return sorted(out, key=lambda e: (e[1], e[2]))


def test_read_models_and_aggregates_pay_the_same(db_url: str, tmp_path: Any) -> None:
    slow_url = f"sqlite:///{tmp_path}/aggregates.sqlite"
    slow, _, _ = _history(slow_url, fast=False)
    fast, proj, counts = _history(db_url, fast=True)
    # Both ways were taken: plain months from the read models, the rest on the aggregates.
    assert counts["read_models"] >= 10, counts
    assert counts["aggregates"] >= 3, counts
    assert _events(fast) == _events(slow)
    kinds = {e[3].get("kind") for e in _events(fast) if e[0].endswith("Payment.Issued")}
    assert kinds == {"regular", "re-issue", "top-up"}
    offsets = [e[3]["offset_fen"] for e in _events(fast) if e[0].endswith("Payment.Issued")]
    assert any(offsets), "the overpayment of U3 is recovered by offset"
    assert proj.view.position() == fast.recorder.max_notification_id()
    with fast.factory.datastore.engine.connect() as conn:  # type: ignore[attr-defined]
        assert verify(fast, conn, proj.head()) == []
