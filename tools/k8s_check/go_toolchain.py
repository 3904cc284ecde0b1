"""Running the Go toolchain: ``go install`` for kustomize, ``go mod download`` for the operators' CRDs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.k8s_check.errors import ToolUnavailable

# Where the Go distribution installs itself when it is not on PATH.
GO_FALLBACK = Path("/usr/local/go/bin/go")


def go_binary() -> str:
    """The ``go`` command: from PATH, or the standard install location."""
    found = shutil.which("go")
    if found:
        return found
    if GO_FALLBACK.exists():
        return str(GO_FALLBACK)
    raise ToolUnavailable("the Go toolchain is needed to install kustomize and fetch CRDs; install Go 1.24 or newer")


def run_go(arguments: list[str], *, extra_env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run ``go <arguments>`` outside any module (a scratch directory) and return its standard output."""
    with tempfile.TemporaryDirectory(prefix="policyloop-go-") as scratch:
        try:
            completed = subprocess.run([go_binary(), *arguments], cwd=scratch, env={**os.environ, **(extra_env or {})},
                                       capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise ToolUnavailable(f"go {' '.join(arguments)} did not finish within {timeout:.0f} s") from error
    if completed.returncode != 0:
        raise ToolUnavailable(f"go {' '.join(arguments)} failed:\n{completed.stderr.strip()}")
    return completed.stdout


def module_directory(module: str, version: str) -> Path:
    """Download ``module@version`` through the Go module proxy (or reuse the module cache); return its directory."""
    info = json.loads(run_go(["mod", "download", "-json", f"{module}@{version}"]))
    if info.get("Error"):
        raise ToolUnavailable(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])
