"""Importing a policy from an export: recorded in Kafka like every other change, then applied."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from policy_store.models import PolicyHistory, PolicyRecord
from policy_store.publishing import record_event
from policy_store.schemas import ERROR_RESPONSES, ImportResult
from policy_store.serialization import policy_document
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.cloudevents import encode
from policyloop_common.errors import ApiError
from policyloop_common.events import PolicyImported
from policyloop_common.policy import Policy

IMPORTABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
router = APIRouter(prefix="/v1/policies", tags=["policies"])
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


@router.post("/import", status_code=201, response_model=ImportResult,
             responses={**ERROR_RESPONSES, 200: {"description": "the id is already here; nothing changed",
                                                 "model": ImportResult}})
async def import_policy(policy: Policy, request: Request, principal: AdminDep,
                        origin: Annotated[str | None, Query(max_length=2000)] = None) -> JSONResponse:
    """One policy of an export (``policy-store-admin import``): 201 when imported, 200 when its id exists."""
    if not IMPORTABLE_ID.fullmatch(policy.policy_id):
        # Ids travel in URL paths (/v1/policies/{id}) and in operators' shells: an export's ids always match.
        raise ApiError(422, "invalid_request", "policy_id may hold letters, digits and . _ : - only",
                       [{"field": "policy_id", "message": "unsupported characters", "type": "value_error"}])
    app = request.app
    with app.state.session_factory() as session:
        existing = session.get(PolicyRecord, policy.policy_id)
        if existing is not None:
            return JSONResponse({"imported": False, "policy": policy_document(existing)}, status_code=200)
    event = PolicyImported(policy=policy, importer=principal.user_id, imported_at=datetime.now(UTC), origin=origin)
    outgoing = encode(event, source="/policyloop/policy-store", topic=app.state.settings.reviews_topic,
                      trace_id=uuid.uuid4().hex)
    await record_event(app, outgoing, "import")
    with app.state.session_factory() as session:
        record = session.get(PolicyRecord, policy.policy_id)
        # Another import of the same id may have won between the check above and the apply: then this event
        # left no history row, and the answer says so.
        imported = session.execute(select(PolicyHistory.id).where(PolicyHistory.event_id == outgoing.event_id)
                                   .limit(1)).first() is not None
        return JSONResponse({"imported": imported, "policy": policy_document(record)},
                            status_code=201 if imported else 200)
