"""policy_generator."""
