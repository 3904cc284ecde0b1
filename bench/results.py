"""What a benchmark reports: measures with their reference and target, percentiles, and the ratio table.

Ratios are the headline. Absolute figures drift on a shared 2-core machine; a measure and its reference taken
side by side in the same run drift together, so their ratio is what can be compared from one run to the next.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated between the closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    """p50 and p99 of a set of durations, in seconds, and how many there were."""

    p50: float
    p99: float
    count: int

    @classmethod
    def of(cls, durations: Sequence[float]) -> Latency:
        """Summarize ``durations`` (seconds)."""
        return cls(p50=percentile(durations, 50), p99=percentile(durations, 99), count=len(durations))


class RatioStyle(StrEnum):
    """How a ratio reads best: a share of a ceiling (73 %) or a multiple of a baseline (12.4×)."""

    PERCENT = "percent"
    TIMES = "times"


def format_ratio(ratio: float | None, style: RatioStyle = RatioStyle.PERCENT) -> str:
    """``0.734`` → ``73.4 %`` (a share), ``12.36`` → ``12.4×`` (a multiple); ``-`` when there is none."""
    if ratio is None or math.isnan(ratio):
        return "-"
    if style is RatioStyle.PERCENT:
        return f"{ratio * 100:.1f} %"
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"


def format_value(value: float | None, unit: str) -> str:
    """A figure with its unit; seconds are shown in ms (or µs below 1 ms), rates with thousands separators."""
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        if value < 0.001:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value * 1000:.0f} ms"
        return f"{value:.2f} s"
    if unit == "ms CPU":
        return f"{value:.2f} ms CPU"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.1f} {unit}".strip()


class Comparison(StrEnum):
    """Which way a target points."""

    AT_LEAST = ">="
    BELOW = "<"


@dataclass(frozen=True)
class Target:
    """A bound on a measure's ratio (``on="ratio"``) or on its value (``on="value"``)."""

    comparison: Comparison
    bound: float
    on: str = "ratio"

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        """Whether the measure meets the target; None when the figure it is about is missing."""
        subject = ratio if self.on == "ratio" else value
        if subject is None or math.isnan(subject):
            return None
        if self.comparison is Comparison.AT_LEAST:
            return subject >= self.bound
        return subject < self.bound

    def describe(self, unit: str, style: RatioStyle) -> str:
        """The target as the table shows it, e.g. ``≥ 70.0 %`` or ``< 300 ms``."""
        symbol = "≥" if self.comparison is Comparison.AT_LEAST else "<"
        shown = format_ratio(self.bound, style) if self.on == "ratio" else format_value(self.bound, unit)
        return f"{symbol} {shown}"


@dataclass(frozen=True)
class Measure:
    """One line of the table: a figure, the reference it is compared with, their ratio and the target."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    reference: float | None = None
    reference_name: str = ""
    reference_unit: str | None = None
    style: RatioStyle = RatioStyle.PERCENT
    target: Target | None = None
    explicit_ratio: float | None = field(default=None, compare=False)

    @property
    def ratio(self) -> float | None:
        """value ÷ reference, unless the benchmark set the ratio itself (e.g. a speed-up: reference ÷ value)."""
        if self.explicit_ratio is not None:
            return self.explicit_ratio
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None without a target or without the figure."""
        return None if self.target is None else self.target.met(self.value, self.ratio)

    def row(self) -> list[str]:
        """The table cells: measure, value, reference, ratio, target, met?"""
        reference = format_value(self.reference, self.reference_unit or self.unit) if self.reference else "-"
        if self.reference_name:
            reference = f"{reference} ({self.reference_name})"
        target = self.target.describe(self.unit, self.style) if self.target else "-"
        met = {True: "yes", False: "NO", None: "-"}[self.met]
        return [f"{self.benchmark}: {self.name}", format_value(self.value, self.unit), reference,
                format_ratio(self.ratio, self.style), target, met]


HEADER = ["measure", "value", "reference", "ratio", "target", "met?"]


def text_table(measures: Iterable[Measure]) -> str:
    """The measures as an aligned plain-text table for the terminal."""
    rows = [HEADER, *(measure.row() for measure in measures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(measures: Iterable[Measure]) -> str:
    """The measures as a Markdown table."""
    rows = [measure.row() for measure in measures]
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Outcome:
    """What one benchmark hands back: its measures and the facts of the run worth writing down beside them."""

    benchmark: str
    measures: list[Measure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    error: str | None = None
    # The 1-minute load average before and after the benchmark: how busy the machine was besides.
    load: tuple[float, float] = (math.nan, math.nan)

    def add(self, name: str, value: float | None, unit: str, **kwargs) -> Measure:
        """Record one measure of this benchmark."""
        measure = Measure(benchmark=self.benchmark, name=name, value=value, unit=unit, **kwargs)
        self.measures.append(measure)
        return measure

    def note(self, line: str) -> None:
        """Record one fact of the run (shown under the table and in docs/benchmarks.md)."""
        self.details.append(line)
        print(f"    {line}", flush=True)
