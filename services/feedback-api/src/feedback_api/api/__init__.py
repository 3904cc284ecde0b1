"""HTTP routes of feedback-api."""
