"""The ``ledger`` command line: a thin click layer over the application and the read models."""
