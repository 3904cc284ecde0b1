"""Choosing the provider from settings: openai when a key is configured (or asked for), offline otherwise."""

from __future__ import annotations

from policy_generator.config import GeneratorSettings
from policy_generator.embeddings import PolicyEmbeddings
from policy_generator.providers.base import PolicyProvider


def build_embeddings(settings: GeneratorSettings) -> PolicyEmbeddings | None:
    """The embeddings client when EMBEDDINGS_MODEL is set; it needs OPENAI_API_KEY (any value for local servers)."""
    if not settings.embeddings_model:
        return None
    if not settings.openai_api_key:
        raise ValueError("EMBEDDINGS_MODEL needs OPENAI_API_KEY")
    return PolicyEmbeddings(api_key=settings.openai_api_key,
                            base_url=settings.embeddings_base_url or settings.openai_base_url,
                            model=settings.embeddings_model, timeout_seconds=settings.embeddings_timeout_seconds)


def build_provider(settings: GeneratorSettings) -> PolicyProvider:
    """The provider the settings ask for; ``auto`` means openai with a key, offline without."""
    choice = settings.llm_provider
    if choice == "auto":
        choice = "openai" if settings.openai_api_key else "offline"
    if choice == "openai":
        if not settings.openai_api_key:
            raise ValueError("LLM_PROVIDER=openai needs OPENAI_API_KEY")
        from policy_generator.metrics import LLM_THROTTLED_SECONDS
        from policy_generator.providers.call_budget import CallBudget
        from policy_generator.providers.openai_provider import OpenAIProvider, TokenPricing

        budget = CallBudget(requests_per_minute=settings.openai_requests_per_minute,
                            tokens_per_minute=settings.openai_tokens_per_minute,
                            on_wait=LLM_THROTTLED_SECONDS.labels("openai").inc)
        return OpenAIProvider(api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                              model=settings.openai_model, temperature=settings.openai_temperature,
                              timeout_seconds=settings.openai_timeout_seconds,
                              max_attempts=settings.openai_max_attempts,
                              pricing=TokenPricing(settings.openai_input_usd_per_million_tokens,
                                                   settings.openai_output_usd_per_million_tokens),
                              budget=budget)
    from policy_generator.providers.offline import OfflineProvider

    return OfflineProvider(duplicate_threshold=settings.duplicate_threshold)
