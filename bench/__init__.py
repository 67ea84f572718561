"""plantctl's benches: ``make bench`` (``python -m bench``) runs them all and prints one table.

Not tests: each prints figures next to their targets; see docs/performance.md.
"""
