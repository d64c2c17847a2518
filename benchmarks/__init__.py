"""Benchmarks of the ledger through its own paths, each figure beside the raw limit of the same database.

Run ``python -m benchmarks --help``; results go to ``docs/performance.md``.
"""
