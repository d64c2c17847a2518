"""An event-sourced ledger for social-assistance benefit disbursements.

The domain (aggregates, their events, value types and errors) lives in
:mod:`ledger.domain`, :mod:`ledger.values` and :mod:`ledger.errors`; the
application service, one method per use case, in :mod:`ledger.application`.
"""

__version__ = "0.1.0"
