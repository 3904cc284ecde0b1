"""The operator's command line on the real stack: list, show, review, export, import, and a rebuild that
reproduces the live store from the topics."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from policy_store.models import ProcessedEvent
from policyloop_common.cloudevents import UnreadableEvent, decode
from policyloop_common.events import POLICY_DECISIONS_TOPIC
from policyloop_common.kafka.topics import PIPELINE_TOPICS
from tests.e2e.test_pipeline import decided, submit
from tests.support.infrastructure import ServerSet
from tests.support.kafka_reader import read_events, read_topic
from tests.support.polling import eventually
from tests.support.stack import ServiceStack
from tests.support.store_state import table_contents

pytestmark = pytest.mark.e2e

def cli(stack: ServiceStack, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``policy-store-admin`` as an operator runs it, with the local stack's environment."""
    result = subprocess.run([sys.executable, "-m", "policy_store.cli", *args], env=stack.env,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def lesson(stack: ServiceStack) -> dict:
    """A new lesson and a paraphrase of it: one policy with two pieces of evidence behind it."""
    column = f"budget_k{uuid.uuid4().hex[:8]}"
    first = {"conversation_id": f"c-{uuid.uuid4().hex[:8]}", "message_id": "m-1", "rating": "negative",
             "comment": f"The column {column} is in thousands of VND, not VND; the total was a thousand times off.",
             "context": {"question": "What is the total budget of all systems?",
                         "sql_queries": [f"SELECT SUM({column}) FROM systems"]}}
    again = {**first, "conversation_id": f"c-{uuid.uuid4().hex[:8]}",
             "comment": f"Again {column} was read as VND. It holds thousands of VND."}
    first_id = submit(stack, first, "olga").json()["feedback_id"]
    policy_id = decided(stack, first_id, "olga")["policy_id"]
    again_id = submit(stack, again, "olga").json()["feedback_id"]
    assert decided(stack, again_id, "olga")["duplicate_of"] == policy_id
    return {"policy_id": policy_id, "feedback_ids": [first_id, again_id]}


def test_list_and_show_read_the_store(stack: ServiceStack, lesson: dict) -> None:
    listed = json.loads(cli(stack, "list", "--json", "--limit", "1000").stdout)
    assert lesson["policy_id"] in {policy["policy_id"] for policy in listed}
    shown = json.loads(cli(stack, "show", lesson["policy_id"], "--history").stdout)
    assert shown["source_feedback_ids"] == lesson["feedback_ids"]
    assert [entry["action"] for entry in shown["history"]] == ["created", "evidence"]


def test_retire_is_recorded_with_the_operator_and_reason(stack: ServiceStack, lesson: dict) -> None:
    retired = json.loads(cli(stack, "--actor", "operator:kim", "retire", lesson["policy_id"],
                             "--reason", "superseded by the new budget view").stdout)
    assert retired["status"] == "retired"
    history = json.loads(cli(stack, "show", lesson["policy_id"], "--history").stdout)["history"]
    assert history[-1] | {"at": None, "event_id": None} == {
        "version": 1, "action": "retire", "actor": "operator:kim", "reason": "superseded by the new budget view",
        "at": None, "event_id": None}
    again = cli(stack, "retire", lesson["policy_id"], check=False)
    assert again.returncode == 1 and "invalid_transition" in again.stderr


def test_unknown_policy_and_missing_token_are_clear_errors(stack: ServiceStack) -> None:
    missing = cli(stack, "show", "no-such-policy", check=False)
    assert missing.returncode == 1 and "not_found" in missing.stderr
    without_secret = subprocess.run([sys.executable, "-m", "policy_store.cli", "list"],
                                    env={k: v for k, v in stack.env.items() if k != "AUTH_JWT_SECRET"},
                                    capture_output=True, text=True, timeout=60)
    assert without_secret.returncode == 1 and "POLICYLOOP_ADMIN_TOKEN" in without_secret.stderr


def test_export_then_import_into_the_store(stack: ServiceStack, lesson: dict, tmp_path: Path) -> None:
    exported = tmp_path / "policies.json"
    cli(stack, "export", "--status", "retired", "--output", str(exported))
    document = json.loads(exported.read_text(encoding="utf-8"))
    ours = next(policy for policy in document["policies"] if policy["policy_id"] == lesson["policy_id"])
    assert ours["history"][-1]["action"] == "retire"
    # The same lesson brought back under a new id, as from another environment, active there.
    copy = {**ours, "policy_id": f"imported-{uuid.uuid4().hex[:12]}", "status": "active"}
    (tmp_path / "import.json").write_text(json.dumps({**document, "policies": [copy, ours]}), encoding="utf-8")
    counts = json.loads(cli(stack, "import", str(tmp_path / "import.json")).stdout)
    assert counts == {"imported": 1, "already_present": 1}
    admin = stack.auth("root", "admin")
    imported = httpx.get(f"{stack.policy_store}/v1/policies/{copy['policy_id']}", headers=admin, timeout=10).json()
    assert imported["status"] == "active" and imported["rule"] == ours["rule"]
    history = httpx.get(f"{stack.policy_store}/v1/policies/{copy['policy_id']}/history", headers=admin,
                        timeout=10).json()["items"]
    assert [entry["action"] for entry in history] == ["imported"]
    again = json.loads(cli(stack, "import", str(tmp_path / "import.json")).stdout)
    assert again == {"imported": 0, "already_present": 2}


def test_import_rejects_a_file_that_is_not_an_export(stack: ServiceStack, tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text(json.dumps({"items": []}), encoding="utf-8")
    result = cli(stack, "import", str(tmp_path / "other.json"), check=False)
    assert result.returncode == 1 and "not a policy export" in result.stderr


def test_reanalysis_decides_feedback_again_through_kafka_and_is_safe_to_run_twice(stack: ServiceStack,
                                                                                lesson: dict) -> None:
    """The lesson's policy was retired and imported back as an active copy above: deciding its feedback again
    finds that copy (evidence it already counts), and neither this run repeated nor a second run adds anything."""
    admin = stack.auth("root", "admin")
    unteachable = submit(stack, {"conversation_id": f"c-{uuid.uuid4().hex[:8]}", "message_id": "m-1",
                                 "rating": "negative", "comment": "Wrong.",
                                 "context": {"question": "How many systems are there?"}}, "olga").json()
    assert decided(stack, unteachable["feedback_id"], "olga")["reason"] == "not_actionable"
    chosen = [*lesson["feedback_ids"], unteachable["feedback_id"]]

    def state() -> dict:
        """What each chosen feedback shows, and the support of the policies it is evidence of."""
        shown = {feedback_id: httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=admin,
                                        timeout=10).json() for feedback_id in chosen}
        support = {document["duplicate_of"]: httpx.get(f"{stack.policy_store}/v1/policies/"
                                                       f"{document['duplicate_of']}", headers=admin,
                                                       timeout=10).json()["support_count"]
                   for document in shown.values() if document.get("duplicate_of")}
        active = len(json.loads(cli(stack, "list", "--json", "--status", "active", "--limit", "1000").stdout))
        return {"reasons": {k: (v["status"], v.get("reason")) for k, v in shown.items()},
                "support": support, "active": active, "shown": shown}

    run_id = f"run-{uuid.uuid4().hex[:8]}"
    first = cli(stack, "reanalyze", *chosen, "--run-id", run_id, "--why", "new offline rules", "--wait",
                "--timeout", "120")
    summary = json.loads(first.stdout)
    assert summary["requested"] == 3 and summary["run"]["done"] is True, summary
    assert summary["run"]["outcomes"] == {"generated": 0, "skipped": 3, "failed": 0}, summary
    assert summary["run"]["policies_created"] == [] and "3 of 3 decided" in first.stderr
    after_first = state()
    assert set(after_first["reasons"].values()) == {("skipped", "duplicate_policy"), ("skipped", "not_actionable")}
    assert all(document["reanalysis_run_id"] == run_id for document in after_first["shown"].values())
    copy = next(iter(after_first["support"]))
    assert copy != lesson["policy_id"] and after_first["support"] == {copy: 2}
    # The same run again: the same requests (same event ids), each decided once.
    again = json.loads(cli(stack, "reanalyze", *chosen, "--run-id", run_id, "--wait", "--timeout", "60").stdout)
    assert again["run"] == summary["run"]
    decisions = [event for event in read_events(stack.env["KAFKA_BOOTSTRAP_SERVERS"], POLICY_DECISIONS_TOPIC)
                 if event.payload.reanalysis_run_id == run_id]
    assert sorted(event.payload.feedback_id for event in decisions) == sorted(chosen)
    # A new run decides everything again and finds the lessons as they are now: nothing changes.
    second = json.loads(cli(stack, "reanalyze", *chosen, "--wait", "--timeout", "120").stdout)
    assert second["run_id"] != run_id and second["run"]["outcomes"] == summary["run"]["outcomes"], second
    after_second = state()
    assert {k: v for k, v in after_second.items() if k != "shown"} == \
        {k: v for k, v in after_first.items() if k != "shown"}
    assert all(document["reanalysis_run_id"] == second["run_id"] for document in after_second["shown"].values())
    usage = cli(stack, "reanalyze", check=False)
    assert usage.returncode == 2 and "--all" in usage.stderr


def test_rebuild_from_the_topics_reproduces_the_live_store(stack: ServiceStack, infrastructure: ServerSet,
                                                          lesson: dict) -> None:
    live_url = stack.env["DATABASE_URL"]
    settle(stack, live_url)
    target = infrastructure.new_database("rebuilt")
    result = cli(stack, "rebuild", "--target-database-url", target)
    report = json.loads(result.stdout)
    assert report["events_applied"] > 0
    live, rebuilt = table_contents(live_url), table_contents(target)
    assert set(live) == set(rebuilt)
    for table in live:
        assert rebuilt[table] == live[table], f"table {table} differs after the rebuild"
    refused = cli(stack, "rebuild", "--target-database-url", target, check=False)
    assert refused.returncode == 1 and "already holds" in refused.stderr
    resumed = json.loads(cli(stack, "rebuild", "--target-database-url", target, "--resume").stdout)
    assert resumed["events_applied"] == 0
    assert table_contents(target) == rebuilt


def settle(stack: ServiceStack, database_url: str) -> None:
    """Wait until the live store has applied every readable event of its topics, and no new ones come."""
    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    topics = list(PIPELINE_TOPICS)

    def events_in_topics() -> set[str]:
        ids = set()
        for topic in topics:
            for message in read_topic(bootstrap, topic):
                try:
                    ids.add(decode(value=message.value(), key=message.key(), headers=message.headers(),
                                   topic=topic).event_id)
                except UnreadableEvent:
                    continue
        return ids

    engine = create_engine(database_url)
    try:
        def applied_all() -> bool | None:
            expected = events_in_topics()
            with Session(engine) as session:
                applied = set(session.execute(select(ProcessedEvent.event_id)).scalars())
            # Events the store refused as invalid are dead-lettered, not applied: only a stable set counts.
            return expected <= applied and events_in_topics() == expected or None

        eventually(applied_all, timeout=180, interval=2, what="the live store to apply every event")
    finally:
        engine.dispose()


def test_import_refuses_ids_that_cannot_travel_in_a_path(stack: ServiceStack, lesson: dict) -> None:
    admin = stack.auth("root", "admin")
    policy = httpx.get(f"{stack.policy_store}/v1/policies/{lesson['policy_id']}", headers=admin, timeout=10).json()
    for odd in ("a/b", "with space", "-leading-dash", "x" * 65):
        reply = httpx.post(f"{stack.policy_store}/v1/policies/import", json={**policy, "policy_id": odd},
                           headers=admin, timeout=30)
        assert reply.status_code == 422, (odd, reply.text)
        assert reply.json()["error"]["code"] == "invalid_request"
