"""Sampling profiles of service processes under benchmark load, with py-spy, summarized as the hottest functions.

Only with ``--profile``. Only samples holding the GIL are kept: Python CPU, which is what a single-process
service runs out of, not threads waiting. The sampler takes CPU of its own on a 2-core machine, so figures
measured while it runs are not the headline figures. The collapsed stacks are kept in ``.local/bench/profiles/``
for flame graphs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, Context, Service

PROFILE_DIR = ROOT / ".local" / "bench" / "profiles"
# Frames of our own code: the functions a fix can change.
_OURS = re.compile(r"\((?:policyloop_common|feedback_api|policy_generator|policy_store)/")
_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class ProfileSummary:
    """The hottest functions of one profile: share of samples inside each (inclusive) and at the top (self)."""

    label: str
    samples: int
    inclusive: list[tuple[str, float]]
    own: list[tuple[str, float]]

    def render(self, top: int = 12) -> str:
        """A plain-text excerpt: inclusive shares of our functions, then self shares of all."""
        lines = [f"profile {self.label}: {self.samples} samples"]
        lines += ["  inclusive (our code):"] + [f"    {share:5.1%}  {name}" for name, share in self.inclusive[:top]]
        lines += ["  self (all code):"] + [f"    {share:5.1%}  {name}" for name, share in self.own[:top]]
        return "\n".join(lines)


collected: list[ProfileSummary] = []


def summarize(label: str, collapsed: str) -> ProfileSummary:
    """Summarize py-spy's raw output (``frame;frame;... count`` lines, outermost frame first)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            if _OURS.search(frame):
                inclusive[frame] += count
    if not total:
        return ProfileSummary(label, 0, [], [])

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common()]

    return ProfileSummary(label, total, shares(inclusive), shares(own))


def _py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if os.path.exists(found) else None


@contextmanager
def profiled(ctx: Context, service: Service, label: str) -> Iterator[None]:
    """Sample ``service`` while the block runs, when the run profiles; a no-op otherwise."""
    spy = _py_spy() if ctx.profile else None
    if spy is None:
        if ctx.profile:
            print("    py-spy not found; no profile taken", file=sys.stderr)
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    output = PROFILE_DIR / f"{label}.txt"
    sampler = subprocess.Popen([spy, "record", "--pid", str(service.pid), "--format", "raw", "--nonblocking", "--gil",
                                "--rate", "100", "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)
        try:
            sampler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            sampler.wait()
    if output.exists():
        summary = summarize(label, output.read_text())
        collected.append(summary)
        print(summary.render(), flush=True)
