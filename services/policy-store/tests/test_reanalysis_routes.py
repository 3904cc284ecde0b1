"""``POST /v1/reanalysis`` and ``GET /v1/reanalysis/{run_id}`` on the application, a real broker and database.

The application is not started (its lifespan would start the consumer): the test gives it the producer the
lifespan would, and applies the generator's answers with the store's materializer, as its consumer would.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from policy_store.core.config import StoreSettings
from policy_store.main import create_app
from policy_store.materializer import Materializer
from policy_store.models import FeedbackRecord, ReanalysisRequest
from policy_store.reanalysis import request_event_id, submission_of
from policyloop_common.auth import mint_token
from policyloop_common.cloudevents import IncomingEvent
from policyloop_common.events import FeedbackReanalysisRequested, Rating
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.kafka.topics import ensure_topics
from tests.support.infrastructure import free_port
from tests.support.kafka_reader import read_events

from .test_materializer import as_incoming, duplicate, generated, submitted
from .test_reanalysis_materializer import in_run, not_actionable

pytestmark = pytest.mark.integration

SECRET = secrets.token_urlsafe(32)


def _settings(**overrides) -> StoreSettings:
    return StoreSettings(auth_jwt_secret=SECRET, auth_jwt_issuer="policyloop-test", auth_jwt_audience="policyloop",
                         **overrides)


def _auth(*roles: str, subject: str = "operator:ana") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(_settings(), subject=subject, roles=list(roles), ttl_seconds=600)}"}


ADMIN = _auth("admin")


def _store(settings: StoreSettings, bootstrap: str) -> tuple[TestClient, DurableProducer]:
    app = create_app(settings)
    producer = DurableProducer(durable_producer_config({"bootstrap.servers": bootstrap},
                                                       delivery_timeout_ms=int(settings.publish_timeout_seconds
                                                                               * 1000)))
    app.state.publisher = producer
    # Not entered as a context manager: that would run the lifespan, which starts the Kafka consumer.
    return TestClient(app), producer


@pytest.fixture
def settings(migrated_url: str, kafka_bootstrap: str, unique_name: str) -> StoreSettings:
    configured = _settings(database_url=migrated_url, kafka_bootstrap_servers=kafka_bootstrap,
                           feedback_topic=f"feedback-{unique_name}")
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, [configured.feedback_topic], partitions=3)
    return configured


@pytest.fixture
def client(settings: StoreSettings) -> Iterator[TestClient]:
    store, producer = _store(settings, settings.kafka_bootstrap_servers)
    yield store
    _stop(store, producer)


def _stop(store: TestClient, producer: DurableProducer, timeout: float = 10.0) -> None:
    store.close()
    producer.close(timeout=timeout)
    store.app.state.publisher = None  # the last reference: librdkafka's client goes with it, not at exit


def stored(client: TestClient, *events) -> None:
    """Events applied as the store's consumer would apply them."""
    materializer: Materializer = client.app.state.materializer
    with client.app.state.session_factory() as session, session.begin():
        for event in events:
            materializer.apply(session, event if isinstance(event, IncomingEvent) else as_incoming(event))


@pytest.fixture
def feedback(client: TestClient) -> TestClient:
    """f1–f3 can be re-analysed; positive and decided-without-submission ones cannot."""
    positive = submitted("f-positive").model_copy(update={"rating": Rating.POSITIVE})
    stored(client, submitted("f1"), not_actionable("f1"), submitted("f2"), generated("f2", "p1"),
           submitted("f3"), duplicate("f3", "p1"), positive, generated("f-no-text", "p9"))
    return client


def test_requests_are_published_page_by_page_recorded_at_once_and_followed_to_done(
        feedback: TestClient, settings: StoreSettings) -> None:
    body = {"feedback_ids": ["f3", "f1", "f2", "f-positive", "f-no-text", "f-unknown"], "limit": 2,
            "reason": "better model"}
    first = feedback.post("/v1/reanalysis", json=body, headers=ADMIN)
    assert first.status_code == 202, first.text
    page = first.json()
    run_id = page["run_id"]
    assert run_id.startswith("rrun-")
    assert {key: page[key] for key in ("requested", "selected", "status_url", "skipped_ids")} == {
        "requested": 2, "selected": 3, "status_url": f"/v1/reanalysis/{run_id}",
        "skipped_ids": ["f-positive", "f-no-text", "f-unknown"]}
    last = feedback.post("/v1/reanalysis", json={**body, "run_id": run_id, "cursor": page["next_cursor"]},
                         headers=ADMIN).json()
    assert (last["run_id"], last["requested"], last["next_cursor"], last["skipped_ids"]) == (run_id, 1, None, [])

    # Recorded here before the answer: the run is visible at once.
    status = feedback.get(f"/v1/reanalysis/{run_id}", headers=ADMIN).json()
    assert status == {"run_id": run_id, "requested": 3, "decided": 0,
                      "outcomes": {"generated": 0, "skipped": 0, "failed": 0}, "policies_created": [], "done": False}

    events = read_events(settings.kafka_bootstrap_servers, settings.feedback_topic)
    assert sorted((event.key, event.event_id) for event in events) == sorted(
        (f, request_event_id(run_id, f)) for f in ("f1", "f2", "f3"))
    with feedback.app.state.session_factory() as session:
        for event in events:
            assert isinstance(event.payload, FeedbackReanalysisRequested)
            assert (event.payload.run_id, event.payload.requested_by, event.payload.reason) == (
                run_id, "operator:ana", "better model")
            assert event.payload.feedback == submission_of(session.get(FeedbackRecord, event.key))

    # The generator answers: f1 becomes a new policy, f2 a duplicate of its own policy, f3 a duplicate again.
    at = events[0].time + timedelta(seconds=5)
    stored(feedback, *[_at(decision, at) for decision in (
        in_run(generated("f1", "p-new"), run_id), in_run(duplicate("f2", "p1"), run_id),
        in_run(duplicate("f3", "p1"), run_id))])
    status = feedback.get(f"/v1/reanalysis/{run_id}", headers=ADMIN).json()
    assert status == {"run_id": run_id, "requested": 3, "decided": 3,
                      "outcomes": {"generated": 1, "skipped": 2, "failed": 0}, "policies_created": ["p-new"],
                      "done": True}
    assert feedback.get("/v1/feedback/f1", headers=ADMIN).json()["policy_id"] == "p-new"


def _at(payload, moment) -> IncomingEvent:
    return dataclasses.replace(as_incoming(payload), time=moment)


def test_asking_again_in_the_same_run_publishes_the_same_events_and_records_nothing_new(
        feedback: TestClient, settings: StoreSettings) -> None:
    body = {"statuses": ["skipped"], "run_id": "rerun-2026-12"}
    for _ in range(2):
        answer = feedback.post("/v1/reanalysis", json=body, headers=ADMIN)
        assert answer.status_code == 202 and answer.json()["requested"] == 2
    events = read_events(settings.kafka_bootstrap_servers, settings.feedback_topic)
    assert sorted(event.event_id for event in events) == sorted(
        [request_event_id("rerun-2026-12", "f1"), request_event_id("rerun-2026-12", "f3")] * 2)
    with feedback.app.state.session_factory() as session:
        rows = session.execute(select(ReanalysisRequest.run_id, ReanalysisRequest.feedback_id)
                               .order_by(ReanalysisRequest.feedback_id)).all()
    assert rows == [("rerun-2026-12", "f1"), ("rerun-2026-12", "f3")]


def test_an_empty_body_never_reruns_everything(feedback: TestClient) -> None:
    refused = feedback.post("/v1/reanalysis", json={}, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"
    assert "all: true" in refused.json()["error"]["details"][0]["message"]
    everything = feedback.post("/v1/reanalysis", json={"all": True, "limit": 10}, headers=ADMIN).json()
    assert (everything["requested"], everything["selected"], everything["next_cursor"]) == (3, 3, None)


@pytest.mark.parametrize("body", [
    {"all": True, "limit": 0}, {"all": True, "limit": 1001}, {"feedback_ids": []},
    {"feedback_ids": [f"f{n}" for n in range(1001)]}, {"statuses": ["decided"]}, {"all": True, "run_id": "a b"},
    {"all": True, "cursor": "%%%"}, {"submitted_after": "2026-11-01T00:00:00"}, {"all": True, "surprise": 1},
])
def test_invalid_requests_are_422(feedback: TestClient, body: dict) -> None:
    answer = feedback.post("/v1/reanalysis", json=body, headers=ADMIN)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"


def test_only_admins_may_start_or_follow_a_run(feedback: TestClient) -> None:
    for roles in (("user",), ("assistant",)):
        assert feedback.post("/v1/reanalysis", json={"all": True}, headers=_auth(*roles)).status_code == 403
        assert feedback.get("/v1/reanalysis/rrun-x", headers=_auth(*roles)).status_code == 403
    assert feedback.post("/v1/reanalysis", json={"all": True}).status_code == 401


def test_an_unknown_run_is_404(feedback: TestClient) -> None:
    for run_id in ("rrun-20261201T000000Z-abcdef", "no%20such", "x" * 65):
        answer = feedback.get(f"/v1/reanalysis/{run_id}", headers=ADMIN)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_a_broker_that_does_not_answer_is_a_503_naming_the_run_to_retry(settings: StoreSettings) -> None:
    unreachable = settings.model_copy(update={"publish_timeout_seconds": 1.0})
    client, producer = _store(unreachable, f"127.0.0.1:{free_port()}")
    try:
        stored(client, submitted("f1"))
        answer = client.post("/v1/reanalysis", json={"feedback_ids": ["f1"], "run_id": "run-outage"}, headers=ADMIN)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == str(settings.retry_after_seconds)
        error = answer.json()["error"]
        assert (error["code"], error["details"]) == ("kafka_unavailable", {"run_id": "run-outage", "cursor": None})
        with client.app.state.session_factory() as session:
            assert session.get(ReanalysisRequest, ("run-outage", "f1")) is None
    finally:
        _stop(client, producer, timeout=1)
