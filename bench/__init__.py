"""Benchmarks of the project (``make bench``, ``make bench-peers``): numbers for docs/annexes/performances.md.

Everything runs on 127.0.0.1, starts what it needs and stops it; see ``bench.run``.
"""
