"""A deterministic, moderately long history built through the application (for integration tests)."""

from __future__ import annotations

import random
from datetime import date

from ledger.application import LedgerApp
from ledger.domain import case_id, household_id, payment_id
from ledger.values import Area, Channel, Month, Programme
from tests.conftest import idn


def build_history(app: LedgerApp, cases: int = 200, months: int = 12, seed: int = 7) -> None:
    """Households, urban dibao cases, monthly payments, returns and re-issues, retroactive changes."""
    rnd = random.Random(seed)
    uow = app.unit_of_work()
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 76000, Month(2022, 1), operator="li.na", effective=date(2022, 1, 1), uow=uow)
    app.set_standard(Programme.URBAN_DIBAO, Area.URBAN, 80000, Month(2023, 7), operator="li.na", effective=date(2023, 6, 20), uow=uow)
    for i in range(cases):
        h, c = f"H{i:05d}", f"U{i:05d}"
        persons = rnd.randint(1, 3)
        members = [
            {"id_number": idn(i * 3 + k, born="19700101"), "name": f"P{i}-{k}", "relation": "head" if k == 0 else "child"}
            for k in range(persons)
        ]
        app.register_household(number=h, community=f"C{i % 7}", area=Area.URBAN, members=members,
                               payee_account=f"62220200{i:08d}", operator="zhang.wei", effective=date(2022, 12, 1), uow=uow)
        app.apply(case_no=c, household_no=h, programme=Programme.URBAN_DIBAO, channel=rnd.choice(list(Channel)),
                  operator="zhang.wei", effective=date(2022, 12, 1), uow=uow)
        app.verify(c, income_fen=rnd.randint(0, 70000), assets_ok=True, verifier="zhang.wei", valid_until=date(2023, 12, 31),
                   operator="zhang.wei", effective=date(2022, 12, 2), uow=uow)
        app.approve(c, amount_fen=rnd.randint(100, 760) * 100 * persons, first_month=Month(2023, 1),
                    operator="li.na", effective=date(2022, 12, 20), uow=uow)
    uow.commit()
    for m in range(1, months + 1):
        month = Month(2023, m)
        uow = app.unit_of_work()
        nos = [f"U{i:05d}" for i in range(cases)]
        uow.preload([case_id(c) for c in nos] + [household_id(f"H{i:05d}") for i in range(cases)])
        uow.preload([payment_id(c, month, n) for c in nos for n in (1, 2)])
        for i in range(cases):
            c = f"U{i:05d}"
            case = uow.find(case_id(c))
            if case.status_at(month) != "active":
                continue
            ref = app.issue_payment(c, month, operator="zhao.min", effective=month.first_day(), uow=uow)
            if rnd.random() < 0.03:
                app.return_payment(ref, "account closed", operator="zhao.min", effective=month.first_day(), uow=uow)
                if rnd.random() < 0.7:
                    app.issue_payment(c, month, operator="zhao.min", effective=month.first_day(), uow=uow)
            if rnd.random() < 0.01 and case.status == "active":
                # Retroactive: suspended from the month just paid.
                app.suspend(c, "review overdue", month, operator="li.na", effective=month.last_day(), uow=uow)
        uow.commit()
