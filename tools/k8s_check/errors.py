"""Errors that stop a check before it can judge the manifests."""


class ToolUnavailable(RuntimeError):
    """A tool or schema the checks need could not be found or installed; the message says what to do."""
