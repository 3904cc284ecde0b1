"""policy-generator: the worker, the policy feed, and a small HTTP server for health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI

from policy_generator.config import GeneratorSettings
from policy_generator.decision import DecisionMaker
from policy_generator.policy_feed import PolicyFeed
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.factory import build_embeddings, build_provider
from policy_generator.schema_catalogue import SchemaCatalogue
from policy_generator.worker import GeneratorWorker
from policyloop_common.garbage_collection import freeze_what_was_loaded
from policyloop_common.service_app import service_app
from policyloop_common.serving import serve

log = logging.getLogger(__name__)
INDEX_LOAD_TIMEOUT_SECONDS = 120


def create_app(settings: GeneratorSettings | None = None) -> FastAPI:
    """The health/metrics app; its lifespan runs the feed and the worker."""
    settings = settings or GeneratorSettings()
    kafka = settings.kafka_config()
    admin = AdminClient(kafka)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        index = PolicyIndex()
        feed = PolicyFeed(kafka, [settings.decisions_topic, settings.reviews_topic], index)
        feed.start()
        # Deciding before the index is loaded would create duplicates of policies we cannot see yet.
        if not feed.wait_caught_up(INDEX_LOAD_TIMEOUT_SECONDS):
            log.warning("policy index not fully loaded in time; starting anyway")
        provider = build_provider(settings)
        log.info("provider ready", extra={"provider": provider.name, "model": provider.model})
        catalogue = SchemaCatalogue.load(settings.schema_catalogue) if settings.schema_catalogue else None
        if catalogue is not None:
            log.info("schema catalogue loaded", extra={"tables": sorted(catalogue.columns)})
        embeddings = build_embeddings(settings)
        if embeddings is not None:
            log.info("candidates by embeddings too", extra={"model": embeddings.model})
        decider = DecisionMaker(index=index, provider=provider, candidate_count=settings.candidate_count,
                                fast_path_threshold=settings.fast_path_threshold, catalogue=catalogue,
                                embeddings=embeddings)
        worker = GeneratorWorker(kafka, group_id=settings.generator_group_id,
                                 transactional_id=settings.generator_transactional_id,
                                 feedback_topic=settings.feedback_topic, decisions_topic=settings.decisions_topic,
                                 decision_maker=decider, batch_size=settings.generator_batch_size,
                                 poll_timeout=settings.generator_poll_timeout_seconds,
                                 commit_interval=settings.generator_commit_interval_seconds,
                                 max_in_flight=settings.generator_max_in_flight,
                                 shutdown_seconds=settings.generator_shutdown_seconds)
        # The loaded index and modules: GC took 8.7 % of a generator's CPU in benchmark runs, 6.6 % with this
        # (docs/benchmarks.md, finding 9). Raising the collector's thresholds as well brought it to 5.0 % but made
        # single collections long (three took 0.19 s together, every decision in flight waiting): not done here.
        freeze_what_was_loaded()
        worker.start()
        app.state.feed, app.state.worker = feed, worker
        try:
            yield
        finally:
            worker.stop()
            feed.stop()

    def kafka_reachable() -> bool:
        try:
            admin.list_topics(timeout=2)
        except KafkaException:
            return False
        return True

    return service_app(
        settings=settings, title="policyloop policy-generator", lifespan=lifespan, routers=[],
        description="Health and metrics of the policy generator.", authenticated=False,
        readiness=lambda app: {
            "kafka": kafka_reachable,
            "policy_index": lambda: app.state.feed.caught_up and app.state.feed.alive,
            "worker": lambda: app.state.worker.alive,
        })


def run() -> None:
    """Run the generator with its health server on POLICY_GENERATOR_PORT."""
    settings = GeneratorSettings()
    serve(create_app(settings), service=settings.service_name, host=settings.policy_generator_host,
          port=settings.policy_generator_port, log_level=settings.log_level)


if __name__ == "__main__":
    run()
