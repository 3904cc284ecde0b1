"""A pinned kustomize, installed with ``go install`` into the cache on first use, and rendering with it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tools.k8s_check.cache import cache_root
from tools.k8s_check.errors import ToolUnavailable
from tools.k8s_check.go_toolchain import run_go

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.8.1"


class RenderError(RuntimeError):
    """kustomize refused to build a kustomization; the message is its own."""


def installed_version(binary: Path) -> str | None:
    """What ``kustomize version`` says, or None when the file does not run."""
    try:
        completed = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def kustomize_binary() -> Path:
    """The pinned kustomize under ``<cache>/bin``; built from source with ``go install`` when missing or outdated."""
    binary = cache_root() / "bin" / "kustomize"
    if binary.exists() and installed_version(binary) == KUSTOMIZE_VERSION:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing kustomize {KUSTOMIZE_VERSION} into {binary.parent} with go install (first run only, "
          "about a minute)", file=sys.stderr, flush=True)
    # Built into a private directory and moved into place in one step, so that a concurrent run never sees
    # half a binary.
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".kustomize-") as staging:
        run_go(["install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"], extra_env={"GOBIN": staging})
        os.replace(Path(staging) / "kustomize", binary)
    version = installed_version(binary)
    if version != KUSTOMIZE_VERSION:
        raise ToolUnavailable(f"{binary} reports version {version!r} after installing {KUSTOMIZE_VERSION}")
    return binary


def render(kustomization: Path) -> list[dict]:
    """``kustomize build`` of a directory, as the list of objects it prints."""
    completed = subprocess.run([str(kustomize_binary()), "build", str(kustomization)], capture_output=True,
                               text=True, timeout=300)
    if completed.returncode != 0:
        raise RenderError(completed.stderr.strip() or f"kustomize exited with {completed.returncode}")
    return [document for document in yaml.safe_load_all(completed.stdout) if document]
