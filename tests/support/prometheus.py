"""Reading a service's ``/metrics`` over HTTP as Prometheus would, for assertions on real traffic."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(base_url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of ``base_url/metrics`` as (name, labels, value)."""
    reply = httpx.get(f"{base_url}/metrics", timeout=10)
    reply.raise_for_status()
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(reply.text) for sample in family.samples]


def sample_value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """The sum of the samples named ``name`` whose labels include ``labels``; None when there is none."""
    matching = [value for sample_name, sample_labels, value in samples
                if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())]
    return sum(matching) if matching else None
