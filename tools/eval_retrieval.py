"""``python -m tools.eval_retrieval``: hit@1, hit@3 and MRR of ``GET /v1/policies/relevant`` on a labelled set.

The set is two files in ``tests/data``: ``retrieval-eval-policies.jsonl`` (policies: the content fields of the
contract's policy object with ``policy_id`` and ``support_count``) and ``retrieval-eval-questions.jsonl``
(``question_id``, ``language`` ``en`` or ``vi``, ``question``, ``expected``: the ids of the policies whose
lesson the question needs; a policy that applies to every question of a language, such as "answer in the
question's language", is not listed).

A private PostgreSQL server is started (the machine's binaries, as for the tests) unless ``--database-url`` names
an empty database. The policies are written the way the store writes every policy, as PolicyGenerated events
applied by policy-store's Materializer, and policy-store's policy routes are served by uvicorn in this process
(its Kafka consumer and producer are left out: the evaluation only reads). Each question is asked over HTTP with
an assistant's token. A question is a hit at k when one of its expected policies is among the first k answers;
MRR is the mean of 1 / the rank of the first expected policy (0 when none is among the answers).

Exit status 1 when hit@1 is below ``--min-hit-at-1`` (0.9).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from policy_store.api.routes import policies
from policy_store.core.config import StoreSettings
from policy_store.core.db import database_reachable, make_engine, make_session_factory
from policy_store.materializer import Materializer
from policy_store.migrate import upgrade
from policyloop_common.auth import mint_token
from policyloop_common.cloudevents import decode, encode
from policyloop_common.events import DecisionDetails, DecisionKind, PolicyGenerated
from policyloop_common.policy import GeneratorInfo, Policy, PolicyStatus
from policyloop_common.service_app import service_app
from tests.support.infrastructure import free_port
from tools.local_stack.postgres import PostgresServer

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
POLICIES = DATA / "retrieval-eval-policies.jsonl"
QUESTIONS = DATA / "retrieval-eval-questions.jsonl"
MIN_HIT_AT_1 = 0.9
# Answers asked per question: enough for hit@3 and a meaningful MRR.
ANSWERS = 10


def load_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON Lines file, in file order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def seed_policies(database_url: str, policies_data: Sequence[dict]) -> None:
    """Migrate ``database_url`` and write the policies as the store's consumer writes generated policies."""
    upgrade(database_url)
    engine = make_engine(database_url)
    materializer = Materializer(auto_activate=True)
    decision = DecisionDetails(kind=DecisionKind.NEW, provider="evaluation", model="labelled-set")
    started = datetime.now(UTC)
    try:
        with make_session_factory(engine)() as session, session.begin():
            for position, data in enumerate(policies_data):
                feedback_id = str(uuid.uuid4())
                at = started + timedelta(milliseconds=position)
                # The store counts support as the feedbacks behind a policy: one per report of the lesson.
                reports = [feedback_id, *(f"{data['policy_id']}-report-{n}" for n in range(1, data["support_count"]))]
                policy = Policy(**data, version=1, status=PolicyStatus.PENDING_REVIEW, source_feedback_ids=reports,
                                created_at=at, updated_at=at,
                                generator=GeneratorInfo(provider="evaluation", model="labelled-set"))
                outgoing = encode(PolicyGenerated(feedback_id=feedback_id, policy=policy, decision=decision),
                                  source="/policyloop/evaluation")
                materializer.apply(session, decode(value=outgoing.value, key=outgoing.key, headers=outgoing.headers,
                                                   topic=outgoing.topic, partition=0, offset=position))
    finally:
        engine.dispose()


def policies_api(settings: StoreSettings) -> FastAPI:
    """policy-store's policy routes (authentication, ranking, ETags) on ``settings.database_url``."""
    engine = make_engine(settings.database_url, settings.database_pool_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = service_app(settings=settings, title="policy-store (policies only)", lifespan=lifespan,
                      description="The policy routes of policy-store, without its Kafka consumer.",
                      routers=[policies.router], readiness=lambda _: {"database": lambda: database_reachable(engine)})
    app.state.session_factory = make_session_factory(engine)
    return app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="eval-retrieval-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the evaluation's HTTP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass(frozen=True)
class Answer:
    """What the endpoint returned for one question."""

    question: dict
    ranked: list[str]

    @property
    def rank(self) -> int | None:
        """The 1-based rank of the first expected policy, or None when none was returned."""
        expected = set(self.question["expected"])
        return next((position for position, policy_id in enumerate(self.ranked, 1) if policy_id in expected),
                    None)


@dataclass
class Figures:
    """hit@1, hit@3 and MRR over some answers."""

    questions: int = 0
    hit_at_1: float = 0.0
    hit_at_3: float = 0.0
    mrr: float = 0.0

    @classmethod
    def of(cls, answers: Sequence[Answer]) -> Figures:
        """The figures of ``answers``."""
        if not answers:
            return cls()
        ranks = [answer.rank for answer in answers]
        count = len(ranks)
        return cls(questions=count, hit_at_1=sum(rank == 1 for rank in ranks) / count,
                   hit_at_3=sum(rank is not None and rank <= 3 for rank in ranks) / count,
                   mrr=sum(1 / rank for rank in ranks if rank) / count)

    def line(self, label: str) -> str:
        """One printable line."""
        return (f"{label:<10} {self.questions:>3} questions  hit@1 {self.hit_at_1:.3f}  hit@3 {self.hit_at_3:.3f}  "
                f"MRR {self.mrr:.3f}")


@dataclass
class Evaluation:
    """Every answer and the figures overall and per language."""

    answers: list[Answer] = field(default_factory=list)

    @property
    def overall(self) -> Figures:
        """The figures of every question."""
        return Figures.of(self.answers)

    def by_language(self) -> dict[str, Figures]:
        """The figures of the questions of each language."""
        languages = sorted({answer.question["language"] for answer in self.answers})
        return {language: Figures.of([answer for answer in self.answers if answer.question["language"] == language])
                for language in languages}

    def misses(self) -> list[Answer]:
        """The answers whose first policy is not an expected one."""
        return [answer for answer in self.answers if answer.rank != 1]


def ask(base_url: str, token: str, questions: Sequence[dict], limit: int = ANSWERS) -> Evaluation:
    """Ask every question over HTTP; the ids returned, best first."""
    evaluation = Evaluation()
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for question in questions:
            reply = client.get("/v1/policies/relevant", params={"question": question["question"], "limit": limit})
            reply.raise_for_status()
            ranked = [item["policy"]["policy_id"] for item in reply.json()["items"]]
            evaluation.answers.append(Answer(question=question, ranked=ranked))
    return evaluation


def evaluate(database_url: str, policies_data: Sequence[dict], questions: Sequence[dict]) -> Evaluation:
    """Seed ``database_url`` (empty), serve the policy routes on it and ask every question."""
    seed_policies(database_url, policies_data)
    settings = StoreSettings(database_url=database_url, auth_jwt_secret=secrets.token_urlsafe(32),
                             auth_jwt_issuer="policyloop-evaluation", auth_jwt_audience="policyloop")
    token = mint_token(settings, subject="retrieval-evaluation", roles=["assistant"])
    with serving(policies_api(settings)) as base_url:
        return ask(base_url, token, questions)


@contextmanager
def private_database() -> Iterator[str]:
    """An empty database on a PostgreSQL server of its own, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="policyloop-eval-retrieval-"))
    server = PostgresServer(home=home / "postgres", port=free_port())
    try:
        server.start()
        server.create_database("evaluation")
        yield server.url("evaluation")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def report(evaluation: Evaluation, *, verbose: bool) -> list[str]:
    """The figures, and with ``verbose`` every miss with what came first."""
    lines = [evaluation.overall.line("overall")]
    lines += [figures.line(language) for language, figures in evaluation.by_language().items()]
    if verbose:
        for answer in evaluation.misses():
            question = answer.question
            lines.append(f"  miss {question['question_id']}: {question['question']!r} expected "
                         f"{question['expected']}, got {answer.ranked[:3]} (rank {answer.rank})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; print the figures; 1 when hit@1 is under the threshold."""
    parser = argparse.ArgumentParser(prog="python -m tools.eval_retrieval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", type=Path, default=POLICIES)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--database-url", help="an empty database to use instead of a private server")
    parser.add_argument("--min-hit-at-1", type=float, default=MIN_HIT_AT_1)
    parser.add_argument("--verbose", action="store_true", help="list the questions whose first answer is wrong")
    args = parser.parse_args(argv)
    policies_data, questions = load_jsonl(args.policies), load_jsonl(args.questions)
    if args.database_url:
        evaluation = evaluate(args.database_url, policies_data, questions)
    else:
        with private_database() as database_url:
            evaluation = evaluate(database_url, policies_data, questions)
    print(f"{len(policies_data)} policies, {len(questions)} questions, GET /v1/policies/relevant over HTTP")
    print("\n".join(report(evaluation, verbose=args.verbose)))
    if evaluation.overall.hit_at_1 < args.min_hit_at_1:
        print(f"FAIL: hit@1 {evaluation.overall.hit_at_1:.3f} is below {args.min_hit_at_1}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
