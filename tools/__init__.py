"""Operator and developer tooling that is not part of any service."""
