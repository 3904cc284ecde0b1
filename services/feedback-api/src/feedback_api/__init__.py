"""feedback_api."""
