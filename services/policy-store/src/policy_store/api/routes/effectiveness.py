"""``GET /v1/policies/{policy_id}/effectiveness``: how a policy does since it is used, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from policy_store.core.db import SessionDep
from policy_store.effectiveness import policy_effectiveness
from policy_store.reviews import policy_or_404
from policy_store.schemas import ERROR_RESPONSES, PolicyEffectiveness
from policyloop_common.auth import Principal, Role, require_roles

router = APIRouter(prefix="/v1/policies", tags=["policies"])
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


@router.get("/{policy_id}/effectiveness", response_model=PolicyEffectiveness, responses=ERROR_RESPONSES)
def get_effectiveness(policy_id: str, request: Request, session: SessionDep, _: AdminDep) -> dict:
    """Uses, feedback after use, similar questions before and after activation, and the harmful signals."""
    return policy_effectiveness(session, policy_or_404(session, policy_id), request.app.state.settings)
