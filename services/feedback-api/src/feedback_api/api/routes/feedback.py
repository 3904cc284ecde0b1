"""``POST /v1/feedback``: validate, authorize, publish durably, answer 202."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind

from feedback_api.core.config import FeedbackApiSettings
from feedback_api.idempotency import IdempotencyRecord, body_fingerprint, feedback_id_for
from feedback_api.messages import accepted_message, preferred_language
from feedback_api.metrics import FEEDBACK_ACCEPTED, FEEDBACK_REJECTED
from feedback_api.models import FeedbackAccepted, FeedbackRequest
from feedback_api.rate_limit import client_address, retry_after_header
from policyloop_common.answer_receipts import InvalidReceipt, verify_receipt
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.cloudevents import encode
from policyloop_common.errors import ApiError, error_responses
from policyloop_common.events import FeedbackSubmitted, Rating
from policyloop_common.kafka.producer import PublishFailed
from policyloop_common.metrics import EVENTS_PUBLISHED
from policyloop_common.tracing import HTTP_TRACEPARENT, traced

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["feedback"])

SubmitterDep = Annotated[Principal, Depends(require_roles(Role.USER, Role.ADMIN))]
MAX_IDEMPOTENCY_KEY = 200

_ERRORS = error_responses(401, 403, 409, 413, 422, 429, 503)


def limit_client_address(request: Request) -> None:
    """Per-address rate limit, checked before anything else so floods of bad requests are cut short too."""
    settings: FeedbackApiSettings = request.app.state.settings
    address = client_address(request.client.host if request.client else None,
                             request.headers.get("x-forwarded-for"), settings.trusted_proxy_count)
    wait = request.app.state.address_rate_limiter.acquire(address)
    if wait > 0:
        FEEDBACK_REJECTED.labels("rate_limited_address").inc()
        raise ApiError(429, "rate_limited_address", "too many requests from this address; try again later",
                       headers={"Retry-After": retry_after_header(wait)})


@router.post("/feedback", status_code=202, response_model=FeedbackAccepted, responses=_ERRORS,
             dependencies=[Depends(limit_client_address)])
async def submit_feedback(
    body: FeedbackRequest,
    request: Request,
    principal: SubmitterDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    accept_language: Annotated[str | None, Header(alias="Accept-Language")] = None,
    answer_receipt: Annotated[str | None, Header(alias="X-Answer-Receipt")] = None,
) -> JSONResponse:
    """Accept feedback on an answer; 202 only once the event is acknowledged by Kafka."""
    settings: FeedbackApiSettings = request.app.state.settings
    wait = request.app.state.rate_limiter.acquire(principal.user_id)
    if wait > 0:
        FEEDBACK_REJECTED.labels("rate_limited").inc()
        raise ApiError(429, "rate_limited", "too many feedback submissions; try again later",
                       headers={"Retry-After": retry_after_header(wait)})
    if settings.require_answer_receipt:
        raw_context = (await request.json()).get("context")
        try:
            verify_receipt(answer_receipt, key=settings.answer_receipt_key,
                           algorithm=settings.answer_receipt_algorithm, user_id=principal.user_id,
                           conversation_id=body.conversation_id, message_id=body.message_id, context=raw_context)
        except InvalidReceipt as error:
            FEEDBACK_REJECTED.labels("invalid_answer_receipt").inc()
            raise ApiError(403, "invalid_answer_receipt", str(error)) from error

    language = preferred_language(accept_language)
    if idempotency_key is None:
        return await _publish(body, request, principal, language, str(uuid.uuid4()))
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(422, "invalid_request", "the Idempotency-Key header is invalid",
                       [{"field": "Idempotency-Key", "message": f"1 to {MAX_IDEMPOTENCY_KEY} printable characters"}])
    feedback_id = feedback_id_for(principal.user_id, key)
    record: IdempotencyRecord = request.app.state.idempotency
    fingerprint = body_fingerprint(await request.body())
    async with record.lock(feedback_id):
        previous = record.get(feedback_id)
        if previous is not None:
            if previous.fingerprint != fingerprint:
                raise ApiError(409, "idempotency_key_reused",
                               "this Idempotency-Key was already used with a different request body")
            return JSONResponse(status_code=202, content=previous.response)
        response = await _publish(body, request, principal, language, feedback_id)
        record.put(feedback_id, fingerprint, json.loads(response.body))
    record.release(feedback_id)
    return response


async def _publish(body: FeedbackRequest, request: Request, principal: Principal, language: str,
                   feedback_id: str) -> JSONResponse:
    settings: FeedbackApiSettings = request.app.state.settings
    event = FeedbackSubmitted(
        feedback_id=feedback_id, user_id=principal.user_id, conversation_id=body.conversation_id,
        message_id=body.message_id, rating=body.rating, comment=body.comment, context=body.context,
        submitted_at=datetime.now(UTC),
    )
    # The caller's trace continues through Kafka; a request without (a valid) one starts a trace here.
    with traced("feedback.submit", request.headers.get(HTTP_TRACEPARENT), kind=SpanKind.PRODUCER,
                feedback_id=feedback_id) as traceparent:
        outgoing = encode(event, source="/policyloop/feedback-api", trace_id=traceparent,
                          topic=settings.feedback_topic)
        try:
            # librdkafka fails the record after publish_timeout_seconds; the margin covers its report's latency.
            await asyncio.wait_for(request.app.state.publisher.publish(outgoing),
                                   timeout=settings.publish_timeout_seconds + 2)
        except (PublishFailed, TimeoutError) as error:
            FEEDBACK_REJECTED.labels("kafka_unavailable").inc()
            log.warning("feedback not acknowledged by Kafka", extra={"error": str(error)})
            raise ApiError(503, "kafka_unavailable", "the feedback could not be stored right now; retry later",
                           headers={"Retry-After": str(settings.retry_after_seconds)}) from error
        EVENTS_PUBLISHED.labels("feedback-api", outgoing.topic, "FeedbackSubmitted").inc()
        FEEDBACK_ACCEPTED.labels(body.rating.value).inc()
        log.info("feedback accepted", extra={"rating": body.rating.value, "event_id": outgoing.event_id})
    triggered = body.rating is Rating.NEGATIVE
    accepted = FeedbackAccepted(feedback_id=feedback_id, auto_generate_triggered=triggered,
                                message=accepted_message(language, triggered),  # type: ignore[arg-type]
                                status_url=f"/v1/feedback/{feedback_id}")
    return JSONResponse(status_code=202, content=accepted.model_dump())
