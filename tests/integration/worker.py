"""A separate process acting on the ledger, started by the concurrency tests.

Usage: python -m tests.integration.worker URL START_AT ACTION CASE [ARG]

Waits until the wall-clock time START_AT (so two workers hit the database at the
same moment), performs one action and prints one JSON line with the outcome.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date

from ledger.application import LedgerApp
from ledger.errors import LedgerError
from ledger.values import Month


def main() -> None:
    url, start_at, action, case_no = sys.argv[1:5]
    arg = sys.argv[5] if len(sys.argv) > 5 else ""
    app = LedgerApp(url)
    app.get_case(case_no)  # connect and warm up before the start line
    time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        if action == "pay":
            result = app.issue_payment(case_no, Month.parse(arg), operator="zhao.min", effective=date(2023, 2, 1))
        elif action == "verify":
            result = app.verify(case_no, income_fen=20000, assets_ok=True, verifier=arg, valid_until=date(2023, 12, 31),
                                operator=arg, effective=date(2023, 2, 1))
        else:
            raise SystemExit(f"unknown action {action}")
        print(json.dumps({"ok": True, "result": result}))
    except LedgerError as e:
        print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))


if __name__ == "__main__":
    main()
