"""policyloop_common."""
