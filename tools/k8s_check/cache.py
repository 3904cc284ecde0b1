"""Where the checks keep what they download: the kustomize binary and the CRDs of the operators we target."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$POLICYLOOP_CACHE`` or ``~/.cache/policyloop``, read at each call so that tests can point it elsewhere."""
    return Path(os.environ.get("POLICYLOOP_CACHE", Path.home() / ".cache" / "policyloop"))
