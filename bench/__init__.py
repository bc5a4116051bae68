"""Reproducible benchmarks. ``make bench`` (= ``python -m bench``) runs them and prints their figures;
results are recorded in bench/RESULTS.md with the machine and the command."""
