"""Which path ids can name a stored row at all; others are answered 404 without asking the database."""

MAX_ID_LENGTH = 64


def could_exist(identifier: str) -> bool:
    """False for ids no row can have: too long for the column, or holding a NUL PostgreSQL cannot compare."""
    return 0 < len(identifier) <= MAX_ID_LENGTH and "\x00" not in identifier
