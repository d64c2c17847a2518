"""Read models fed from the ledger's event log, and the queries that read them.

Reports read only these tables, never the aggregates. Before answering, a query
catches the read models up with the log, so it is never stale.
"""
