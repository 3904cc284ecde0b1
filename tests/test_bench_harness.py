"""The benchmark harness's pure parts: percentiles, ratio and value formatting, targets, reading wrk's report."""

from __future__ import annotations

import math

import pytest

from bench.profiling import summarize
from bench.results import (
    Comparison,
    Latency,
    Measure,
    RatioStyle,
    Target,
    format_ratio,
    format_value,
    markdown_table,
    percentile,
    text_table,
)
from bench.workload import Lesson, made_up_word
from bench.wrk import feedback_script, parse_wrk_output

WRK_REPORT = """Running 10s test @ http://127.0.0.1:40123/v1/feedback
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    48.10ms    9.75ms 139.83ms   83.12%
    Req/Sec     1.33k   120.51     1.52k    72.00%
  Latency Distribution
     50%   46.20ms
     75%   51.02ms
     90%   58.77ms
     99%   91.40ms
  13297 requests in 10.01s, 4.35MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1328.37
Transfer/sec:    445.02KB
BENCH status 202 13294
BENCH status 503 3
BENCH latency_us 50 46187
BENCH latency_us 75 51020
BENCH latency_us 90 58771
BENCH latency_us 99 91398
"""


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile([1.0, 2.0], 50) == pytest.approx(1.5)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_nothing_or_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary() -> None:
    latency = Latency.of([0.010] * 98 + [0.200, 0.300])
    assert latency.p50 == pytest.approx(0.010)
    assert 0.1 < latency.p99 < 0.3
    assert latency.count == 100


def test_ratio_formatting() -> None:
    assert format_ratio(0.734) == "73.4 %"
    assert format_ratio(1.0) == "100.0 %"
    assert format_ratio(12.36, RatioStyle.TIMES) == "12.4×"
    assert format_ratio(1.834, RatioStyle.TIMES) == "1.83×"
    assert format_ratio(None) == "-"
    assert format_ratio(math.nan) == "-"


def test_value_formatting() -> None:
    assert format_value(0.0123, "s") == "12.3 ms"
    assert format_value(0.250, "s") == "250 ms"
    assert format_value(0.0004, "s") == "400 µs"
    assert format_value(2.3, "s") == "2.30 s"
    assert format_value(1328.37, "req/s") == "1,328 req/s"
    assert format_value(47.5, "dec/s") == "47.5 dec/s"
    assert format_value(None, "s") == "-"


def test_targets_on_ratio_and_on_value() -> None:
    at_least = Target(Comparison.AT_LEAST, 0.70)
    assert at_least.met(value=700, ratio=0.70) is True
    assert at_least.met(value=600, ratio=0.69) is False
    assert at_least.met(value=None, ratio=None) is None
    below = Target(Comparison.BELOW, 0.300, on="value")
    assert below.met(value=0.299, ratio=None) is True
    assert below.met(value=0.300, ratio=None) is False
    assert at_least.describe("req/s", RatioStyle.PERCENT) == "≥ 70.0 %"
    assert below.describe("s", RatioStyle.PERCENT) == "< 300 ms"
    assert Target(Comparison.AT_LEAST, 10).describe("dec/s", RatioStyle.TIMES) == "≥ 10.0×"


def test_measure_ratio_row_and_tables() -> None:
    measure = Measure(benchmark="ingest", name="accepted", value=900.0, unit="req/s", reference=1200.0,
                      reference_name="HTTP ceiling", target=Target(Comparison.AT_LEAST, 0.70))
    assert measure.ratio == pytest.approx(0.75)
    assert measure.met is True
    assert measure.row() == ["ingest: accepted", "900 req/s", "1,200 req/s (HTTP ceiling)", "75.0 %", "≥ 70.0 %",
                             "yes"]
    speedup = Measure(benchmark="fast-path", name="p99", value=0.025, unit="s", reference=2.3,
                      style=RatioStyle.TIMES, explicit_ratio=2.3 / 0.025,
                      target=Target(Comparison.BELOW, 0.020, on="value"))
    assert speedup.ratio == pytest.approx(92.0)
    assert speedup.met is False
    missing = Measure(benchmark="store", name="rate", value=None, unit="ev/s", reference=100.0,
                      target=Target(Comparison.AT_LEAST, 0.5))
    assert missing.ratio is None and missing.met is None
    table = text_table([measure, speedup])
    assert table.splitlines()[0].split() == ["measure", "value", "reference", "ratio", "target", "met?"]
    assert "92.0×" in table and "NO" in table
    markdown = markdown_table([measure])
    assert markdown.splitlines()[1] == "|---|---|---|---|---|---|"
    assert "| ingest: accepted | 900 req/s |" in markdown


def test_wrk_report_with_script_lines() -> None:
    result = parse_wrk_output(WRK_REPORT)
    assert result.requests == 13297
    assert result.duration == pytest.approx(10.01)
    assert result.requests_per_second == pytest.approx(1328.37)
    assert result.statuses == {202: 13294, 503: 3}
    assert result.rate_of(202) == pytest.approx(13294 / 10.01)
    assert result.non_2xx == 3
    assert result.p50 == pytest.approx(0.046187)
    assert result.p99 == pytest.approx(0.091398)


def test_wrk_report_without_script_lines_uses_the_latency_distribution() -> None:
    plain = "\n".join(line for line in WRK_REPORT.splitlines() if not line.startswith("BENCH")) + """
  Socket errors: connect 0, read 2, write 0, timeout 5"""
    result = parse_wrk_output(plain.replace("  13297 requests in 10.01s", "  13297 requests in 1.00m"))
    assert result.duration == pytest.approx(60.0)
    assert result.statuses == {}
    assert result.p50 == pytest.approx(0.0462)
    assert result.p99 == pytest.approx(0.0914)
    assert result.socket_errors == 7


def test_wrk_report_refuses_other_text() -> None:
    with pytest.raises(ValueError):
        parse_wrk_output("wrk: command not found")


def test_feedback_script_escapes_the_body_and_sends_the_token() -> None:
    script = feedback_script(method="POST", headers={"Authorization": "Bearer abc.def", "Content-Type": "x"},
                             body_prefix='{"comment": "a \\"quoted\\" word", "message_id": "m-',
                             body_suffix='"}')
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Authorization"] = "Bearer abc.def"' in script
    assert 'local prefix = "{\\"comment\\": \\"a \\\\\\"quoted\\\\\\" word\\", \\"message_id\\": \\"m-"' in script
    assert "BENCH status" in script and "latency:percentile(q)" in script


def test_lessons_are_stable_and_distinct() -> None:
    assert Lesson.number(7) == Lesson.number(7)
    columns = {Lesson.number(number).column for number in range(5000)}
    assert len(columns) == 5000
    assert len({made_up_word(number) for number in range(27_000)}) == 27_000


def test_profile_summary_counts_inclusive_and_self_shares() -> None:
    collapsed = "\n".join([
        "run (uvicorn/main.py:10);handle (feedback_api/api/routes/feedback.py:40);encode (policyloop_common/x.py:5) 6",
        "run (uvicorn/main.py:10);handle (feedback_api/api/routes/feedback.py:41) 4",
    ])
    summary = summarize("ingest", collapsed)
    assert summary.samples == 10
    assert dict(summary.inclusive) == {"handle (feedback_api/api/routes/feedback.py)": 1.0,
                                       "encode (policyloop_common/x.py)": 0.6}
    assert dict(summary.own)["handle (feedback_api/api/routes/feedback.py)"] == pytest.approx(0.4)
