"""Configuration and database plumbing of policy-store."""
