"""The garbage collector in a service that runs for days: what lives as long as the process is not walked again.

CPython's collector walks its oldest generation in full whenever it has grown by a quarter; in a service that
means every module, schema and cache loaded at start, again and again, to find nearly nothing (a full collection
of policy-store freed 10 to 1,708 objects in a benchmark run, in 72 to 185 ms each: docs/benchmarks.md,
findings 9 and 12).
"""

from __future__ import annotations

import gc


def freeze_what_was_loaded() -> None:
    """Collect once, then take every object alive now out of the collector's work for good: what a service has
    loaded before it starts working lives as long as the process. Objects frozen are still freed when nothing
    refers to them; only a cycle among them would stay."""
    gc.collect()
    gc.freeze()
