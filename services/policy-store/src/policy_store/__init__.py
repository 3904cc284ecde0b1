"""policy_store."""
