"""Request and response bodies of feedback-api."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from policyloop_common.events import MAX_TEXT, FeedbackContext, Rating
from policyloop_common.safe_text import SafeText


class RequestContext(FeedbackContext):
    """The context as a request carries it: unknown fields are refused (422), where an event reader ignores them."""

    model_config = ConfigDict(extra="forbid")


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback`` body; the submitting user comes from the token, never from here."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: SafeText = Field(min_length=1, max_length=256)
    message_id: SafeText = Field(min_length=1, max_length=256)
    rating: Rating
    # validate_default: the check below must also run when the comment is left out.
    comment: SafeText | None = Field(default=None, max_length=MAX_TEXT, validate_default=True)
    context: RequestContext

    @field_validator("comment")
    @classmethod
    def _comment_required_for_negative(cls, comment: str | None, info: ValidationInfo) -> str | None:
        """A negative rating must say what was wrong: that is the lesson."""
        if info.data.get("rating") is Rating.NEGATIVE and not (comment or "").strip():
            raise ValueError("comment is required for a negative rating")
        return comment


class FeedbackAccepted(BaseModel):
    """``202`` body: the feedback is durably in Kafka."""

    feedback_id: str
    auto_generate_triggered: bool
    message: str
    status_url: str
