"""Candidates by meaning: an OpenAI-compatible ``/embeddings`` endpoint, when one is configured.

The offline similarity (``text_matching``) meets paraphrases through shared schema objects and a bilingual
lexicon; an embedding model also meets the ones that share neither ("people who log in each month" and
``monthly_active_users`` described in other words). With ``EMBEDDINGS_MODEL`` set, each feedback's candidates are
the offline ones plus the policies nearest to it by cosine of embeddings, up to the same ``k``.

What embeddings never do here: decide. The fast path (a near-verbatim repeat folded without a model call) and the
offline provider's duplicate threshold stay on the offline similarity, which is measured (docs/dedup.md); an
embedding-only candidate is only shown to the model, which decides with reasons. If the endpoint fails, the
decision goes on with the offline candidates and the failure is counted.

Vectors of policies are kept in memory by (policy id, version) and fetched in batches when first needed, so a
policy costs one embedding per version and a feedback one call.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

import openai

from policy_generator.dedup import policy_text
from policy_generator.metrics import EMBEDDING_CALLS
from policy_generator.providers.base import Candidate
from policy_generator.providers.thread_connections import sdk_http_client
from policyloop_common.policy import Policy

log = logging.getLogger(__name__)

# Inputs per request: well under every OpenAI-compatible server's limit.
BATCH = 64
# Characters of one input: the embedding of a long answer says little more than its first part.
MAX_INPUT_CHARS = 4000


class PolicyEmbeddings:
    """Embeds texts through one model and ranks policies by cosine; safe to share between decision threads."""

    def __init__(self, *, api_key: str, base_url: str | None, model: str, timeout_seconds: float = 10.0) -> None:
        self.model = model
        # Every decision thread embeds its feedback: each on a connection of its own (``thread_connections``).
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=1,
                                     http_client=sdk_http_client(base_url))
        self._vectors: dict[tuple[str, int], list[float]] = {}
        self._lock = threading.Lock()

    def nearest(self, text: str, policies: Sequence[Policy], k: int) -> list[tuple[float, Policy]]:
        """The ``k`` policies nearest to ``text``, best first, with their cosine; [] when the endpoint fails."""
        if not policies:
            return []
        try:
            probe = self._embed([text])[0]
            vectors = self._policy_vectors(policies)
        except openai.OpenAIError as error:
            EMBEDDING_CALLS.labels("error").inc()
            log.warning("embeddings unavailable; offline candidates only", extra={"error": str(error)[:300]})
            return []
        scored = [(cosine(probe, vectors[(p.policy_id, p.version)]), p) for p in policies]
        scored.sort(key=lambda pair: (-pair[0], pair[1].created_at, pair[1].policy_id))
        return scored[:k]

    def _policy_vectors(self, policies: Sequence[Policy]) -> dict[tuple[str, int], list[float]]:
        with self._lock:
            missing = [p for p in policies if (p.policy_id, p.version) not in self._vectors]
        for start in range(0, len(missing), BATCH):
            chunk = missing[start:start + BATCH]
            vectors = self._embed([policy_text(p) for p in chunk])
            with self._lock:
                self._vectors.update({(p.policy_id, p.version): v for p, v in zip(chunk, vectors, strict=True)})
        with self._lock:
            return {(p.policy_id, p.version): self._vectors[(p.policy_id, p.version)] for p in policies}

    def _embed(self, texts: list[str]) -> list[list[float]]:
        response = self._client.embeddings.create(model=self.model, input=[t[:MAX_INPUT_CHARS] or " " for t in texts])
        EMBEDDING_CALLS.labels("ok").inc()
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]


def merged_candidates(offline: list[Candidate], semantic: list[tuple[float, Policy]], k: int) -> list[Candidate]:
    """The best ``k`` of both lists by the higher of a policy's two scores, re-indexed 0..k-1 for the model."""
    best: dict[str, tuple[float, Policy]] = {c.policy.policy_id: (c.similarity, c.policy) for c in offline}
    for score, policy in semantic:
        if score > best.get(policy.policy_id, (-1.0, policy))[0]:
            best[policy.policy_id] = (score, policy)
    ranked = sorted(best.values(), key=lambda pair: (-pair[0], pair[1].created_at, pair[1].policy_id))
    return [Candidate(index=i, policy=policy, similarity=round(score, 4))
            for i, (score, policy) in enumerate(ranked[:k])]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity, 0 for a zero vector."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
