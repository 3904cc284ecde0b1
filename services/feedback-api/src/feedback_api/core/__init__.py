"""Configuration and process-wide resources of feedback-api."""
