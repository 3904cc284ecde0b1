"""The HTTP metrics middleware: every answer counted by route template and status, through the ASGI stack."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from policyloop_common.http_metrics import HttpMetrics


def _count(service: str, method: str, route: str, status: str) -> float:
    return REGISTRY.get_sample_value("policyloop_http_requests_total", {
        "service": service, "method": method, "route": route, "status": status}) or 0.0


def _latencies(service: str, route: str) -> float:
    return REGISTRY.get_sample_value("policyloop_http_request_seconds_count",
                                     {"service": service, "route": route}) or 0.0


@pytest.fixture
def service() -> tuple[str, TestClient]:
    name = f"metrics-test-{uuid.uuid4().hex[:8]}"
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        return {"item_id": item_id}

    @app.get("/broken")
    def broken() -> dict:
        raise RuntimeError("a bug")

    app.add_middleware(HttpMetrics, service=name)
    return name, TestClient(app, raise_server_exceptions=False)


def test_answers_are_counted_by_route_template_and_status(service: tuple[str, TestClient]) -> None:
    name, client = service
    assert client.get("/items/1").json() == {"item_id": 1}
    assert client.get("/items/2").status_code == 200
    assert client.get("/items/not-a-number").status_code == 422
    assert client.get("/nowhere").status_code == 404

    assert _count(name, "GET", "/items/{item_id}", "200") == 2
    assert _count(name, "GET", "/items/{item_id}", "422") == 1
    assert _count(name, "GET", "unmatched", "404") == 1
    assert _latencies(name, "/items/{item_id}") == 3


def test_an_exception_escaping_the_application_counts_as_its_500(service: tuple[str, TestClient]) -> None:
    name, client = service
    assert client.get("/broken").status_code == 500
    assert _count(name, "GET", "/broken", "500") == 1
