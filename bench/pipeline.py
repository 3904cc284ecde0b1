"""The policyloop services as a benchmark starts them, and what it reads back from Kafka.

Each helper starts one real service process (``python -m <service>.main``) with the run's broker, the
benchmark's own topics and consumer groups, and the settings the benchmark asks for.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from bench.harness import BenchRun, Service, Topics, wait_for
from bench.workload import Lesson, policy_for
from policyloop_common.cloudevents import encode
from policyloop_common.events import DecisionDetails, DecisionKind, FeedbackSubmitted, PolicyGenerated
from policyloop_common.kafka.producer import produce_when_room


def start_llm(bench: BenchRun, latency: float, verdict: str = "NEW") -> Service:
    """The OpenAI-compatible server of ``bench.llm_server``, answering ``verdict`` after ``latency`` seconds."""
    server = bench.start("llm-server", "bench.llm_server", args=("--latency", str(latency), "--verdict", verdict))
    server.wait_ready(path="/healthz", timeout=60)
    return server


def llm_requests(server: Service) -> int:
    """How many chat completions the server has answered."""
    return httpx.get(f"{server.url}/stats", timeout=5).json()["requests"]


def generator_environment(bench: BenchRun, topics: Topics, llm: Service, *, group: str,
                          **settings: str) -> dict[str, str]:
    """policy-generator's environment: the openai provider on ``llm``, the benchmark's topics and group."""
    return bench.environment(**topics.environment(), LLM_PROVIDER="openai", OPENAI_API_KEY="sk-bench",
                             OPENAI_BASE_URL=f"{llm.url}/v1", GENERATOR_GROUP_ID=group, **settings)


def start_generator(bench: BenchRun, env: dict[str, str], number: int = 0) -> Service:
    """One policy-generator process with its own transactional id."""
    env = {**env, "GENERATOR_TRANSACTIONAL_ID": f"{env['GENERATOR_GROUP_ID']}-{number}"}
    return bench.start(f"policy-generator-{number}", "policy_generator.main", port_variable="POLICY_GENERATOR_PORT",
                       env=env)


def start_store(bench: BenchRun, topics: Topics, database: str, **settings: str) -> Service:
    """policy-store on ``database``, reading the benchmark's topics with a group of its own."""
    env = bench.environment(**topics.environment(), DATABASE_URL=database,
                            STORE_GROUP_ID=f"{topics.prefix}-store", **settings)
    return bench.start("policy-store", "policy_store.main", port_variable="POLICY_STORE_PORT", env=env)


def start_api(bench: BenchRun, topics: Topics) -> Service:
    """feedback-api with the rate limits off (a load test is one user at many times the human rate)."""
    env = bench.environment(**topics.environment(), RATE_LIMIT_PER_MINUTE="0", RATE_LIMIT_PER_ADDRESS_PER_MINUTE="0")
    return bench.start("feedback-api", "feedback_api.main", port_variable="FEEDBACK_API_PORT", env=env)


def wait_group_assigned(bootstrap: str, group: str, members: int, partitions: int, timeout: float = 120) -> None:
    """Wait until ``group`` has ``members`` members holding all ``partitions`` partitions between them, each its
    share (cooperative rebalancing first leaves the partitions with their old owner and moves them in a second
    round: all held by one member is not yet the assignment a measure may start on)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def assigned() -> bool:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        except KafkaException:
            return False  # the group's coordinator not ready yet (a broker just started, the group not created)
        shares = [len(member.assignment.topic_partitions) for member in description.members]
        return len(shares) == members and sum(shares) == partitions and min(shares) >= partitions // members

    wait_for(assigned, timeout=timeout, what=f"{members} member(s) of {group} holding {partitions} partitions",
             interval=0.5)


def publish(bootstrap: str, topic: str, feedbacks: list[FeedbackSubmitted], *, spread: int | None = None) -> float:
    """Publish ``feedbacks`` as feedback-api would (same encoding, acks=all); return when it started.

    With ``spread``, feedback ``i`` goes to partition ``i % spread`` rather than its key's: a warm-up that must
    reach every partition, hence every consumer.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    events = [encode(feedback, source="/policyloop/feedback-api", topic=topic) for feedback in feedbacks]
    started = time.monotonic()
    for number, event in enumerate(events):
        where = {"partition": number % spread} if spread else {}
        producer.produce(event.topic, key=event.key, value=event.value, headers=event.headers, **where)
    if producer.flush(60):
        raise RuntimeError("feedback not acknowledged by the broker")
    return started


class DecisionTail:
    """Reads the decisions topic as the store does (read_committed); notes when each wanted decision arrived."""

    def __init__(self, bootstrap: str, topic: str, wanted: set[str]) -> None:
        self.arrivals: dict[str, float] = {}
        self._wanted = wanted
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-tail-{uuid.uuid4().hex}",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                   "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
        self._consumer.subscribe([topic])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="decision-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # consume() returns once it has num_messages or the timeout passed: small values keep arrival times sharp.
            for message in self._consumer.consume(num_messages=50, timeout=0.01):
                key = message.key().decode() if message.error() is None and message.key() else None
                if key in self._wanted:
                    with self._lock:
                        self.arrivals.setdefault(key, time.monotonic())

    def count(self) -> int:
        """Decisions seen so far."""
        with self._lock:
            return len(self.arrivals)

    def wait_for(self, count: int, until: float) -> tuple[int, float]:
        """Wait until ``count`` decisions arrived or the monotonic clock reaches ``until``; return how many
        arrived and when the last of them did."""
        while self.count() < count and time.monotonic() < until:
            time.sleep(0.02)
        with self._lock:
            return len(self.arrivals), max(self.arrivals.values(), default=time.monotonic())

    def close(self) -> None:
        """Stop reading."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def publish_policies(bootstrap: str, topic: str, count: int) -> None:
    """Publish the policies of lessons 0..count-1 as PolicyGenerated events, as the generator would."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": True})
    details = DecisionDetails(kind=DecisionKind.NEW, provider="openai", model="gpt-4o-mini", llm_calls=1)
    for number in range(count):
        feedback_id = str(uuid.uuid4())
        event = encode(PolicyGenerated(feedback_id=feedback_id, policy=policy_for(Lesson.number(number),
                                                                                  feedback_id=feedback_id),
                                       decision=details), source="/policyloop/policy-generator", topic=topic)
        produce_when_room(producer, event)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("policies not acknowledged by the broker")

