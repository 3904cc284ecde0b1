"""Editing a policy: a reviewer's rewrite becomes the next version, recorded in Kafka and in the history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, Field, model_validator
from sqlalchemy import select

from policy_store.models import PolicyHistory
from policy_store.publishing import record_event
from policy_store.reviews import policy_or_404
from policy_store.schemas import ERROR_RESPONSES
from policy_store.serialization import policy_document
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.cloudevents import encode
from policyloop_common.errors import ApiError
from policyloop_common.events import PolicyEdit, PolicyEdited
from policyloop_common.policy import PolicyStatus

router = APIRouter(prefix="/v1/policies", tags=["policies"])
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
EDITABLE = {PolicyStatus.PENDING_REVIEW.value, PolicyStatus.ACTIVE.value}


class EditRequest(PolicyEdit):
    """``PATCH /v1/policies/{id}``: the fields to change (at least one) and why."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _changes_something(self) -> EditRequest:
        if not self.changes().updates():
            raise ValueError("name at least one field to change (null leaves a field as it is)")
        return self

    def changes(self) -> PolicyEdit:
        """The content part, only the fields that were sent."""
        return PolicyEdit(**self.model_dump(exclude_unset=True, exclude={"reason"}))


@router.patch("/{policy_id}", responses=ERROR_RESPONSES)
async def edit_policy(policy_id: str, edit: EditRequest, request: Request, principal: AdminDep) -> dict:
    """pending_review or active → the same status, next version; 409 for a closed policy or a concurrent edit."""
    app = request.app
    with app.state.session_factory() as session:
        record = policy_or_404(session, policy_id)
        if record.status not in EDITABLE:
            raise ApiError(409, "invalid_transition", f"cannot edit a policy that is {record.status}",
                           {"status": record.status, "action": "edit"})
        version = record.version + 1
    event = PolicyEdited(policy_id=policy_id, version=version, changes=edit.changes(), editor=principal.user_id,
                         reason=edit.reason, edited_at=datetime.now(UTC))
    outgoing = encode(event, source="/policyloop/policy-store", topic=app.state.settings.reviews_topic,
                      trace_id=uuid.uuid4().hex)
    await record_event(app, outgoing, "edit")
    with app.state.session_factory() as session:
        record = policy_or_404(session, policy_id)
        applied = session.execute(select(PolicyHistory.id).where(PolicyHistory.event_id == outgoing.event_id,
                                                                 PolicyHistory.version == version)).first()
        if applied is None:
            raise ApiError(409, "concurrent_edit", "another change reached this policy first; reload and retry",
                           {"version": record.version})
        return policy_document(record)
