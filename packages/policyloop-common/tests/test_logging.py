"""The services' log configuration: JSON lines, and the HTTP clients' line per request only when debugging."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from policyloop_common.logging import configure_logging, log_context


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    client_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, client_level in client_levels.items():
        logging.getLogger(name).setLevel(client_level)


@pytest.mark.usefixtures("restored_logging")
def test_the_http_clients_log_each_request_only_at_debug() -> None:
    configure_logging("test-service", "INFO")
    for name in ("httpx", "httpx2"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert logging.getLogger(name).isEnabledFor(logging.WARNING)
    assert logging.getLogger("policy_generator.worker").isEnabledFor(logging.INFO)

    configure_logging("test-service", "DEBUG")
    for name in ("httpx", "httpx2"):
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG)


@pytest.mark.usefixtures("restored_logging")
def test_a_line_is_one_json_object_with_the_ids_of_the_work(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO")
    with log_context(feedback_id="f-1", trace_id="t-1"):
        logging.getLogger("policy_generator.worker").info("decided", extra={"kind": "new"})
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["service"], line["msg"], line["feedback_id"], line["trace_id"], line["kind"]) == (
        "test-service", "decided", "f-1", "t-1", "new")
