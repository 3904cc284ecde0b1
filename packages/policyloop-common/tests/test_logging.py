"""The services' log configuration: JSON lines, and the HTTP clients' line per request only when debugging."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

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


@pytest.mark.usefixtures("restored_logging")
def test_fields_read_as_they_did_with_the_standard_encoder(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO")
    at = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    logging.getLogger("policy_store.consumer").info("applied", extra={
        "at": at, "offsets": (1, 2), "comment": "Umsatz für Ägypten", "ratio": 0.25, "changed": True})
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    line = json.loads(raw)
    assert (line["at"], line["offsets"], line["comment"], line["ratio"], line["changed"]) == (
        str(at), [1, 2], "Umsatz für Ägypten", 0.25, True)
    assert "Ägypten" in raw  # written as UTF-8, not escaped


@pytest.mark.usefixtures("restored_logging")
def test_a_field_the_fast_encoder_refuses_is_still_logged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO")
    logging.getLogger("policy_store.consumer").warning("odd offset", extra={"offset": 2**70})
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["msg"], line["offset"], line["level"]) == ("odd offset", 2**70, "warning")
