"""Plain, per-sample reference implementations of CAL / WS-DAN.

They are the independent computations the tests check mmcal's batched code
against, and the reference-style contender of
``tools/analysis_tools/benchmark.py``; mmcal itself never uses them.
"""
