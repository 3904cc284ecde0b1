"""HTTP routes of policy-store."""
