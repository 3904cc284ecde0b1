"""Debian's Chromium for the browser tests, installed from Debian's packages when missing.

Playwright's own browser download needs a host this machine cannot reach, so the tests drive the distribution's
build instead, through ``executable_path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def chromium_executable() -> Path:
    """The Chromium binary; installs Debian's ``chromium`` package with apt-get if there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"{CHROMIUM} not found; install Debian's package: apt-get install chromium")
    print("installing Chromium from Debian's packages (first run only)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], check=True, env=env)
    if not CHROMIUM.exists():
        raise RuntimeError(f"chromium was installed but {CHROMIUM} is still missing")
    return CHROMIUM
