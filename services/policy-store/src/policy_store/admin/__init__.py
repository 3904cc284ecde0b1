"""The review page ``/admin/``: server-rendered HTML for admins to review, approve, reject and retire policies."""

from policy_store.admin.routes import router

__all__ = ["router"]
