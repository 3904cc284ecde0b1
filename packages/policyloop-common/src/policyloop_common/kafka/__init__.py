"""Thin layer over confluent-kafka shared by the services."""
