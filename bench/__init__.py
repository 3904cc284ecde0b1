"""Benchmarks on the real stack: ``python -m bench`` prints measures against their references as ratios."""
