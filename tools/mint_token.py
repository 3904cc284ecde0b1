"""``python -m tools.mint_token --sub alice --roles user``: a bearer token for the local stack.

Reads AUTH_JWT_SECRET, AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE from the environment (``source .local/stack.env``).
"""

from __future__ import annotations

import argparse

from policyloop_common.auth import mint_token
from policyloop_common.settings import ServiceSettings


def main() -> None:
    """Print one token."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sub", required=True, help="the user id")
    parser.add_argument("--roles", default="user", help="comma-separated: user, assistant, admin")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args()
    settings = ServiceSettings()
    if not settings.auth_jwt_secret:
        parser.error("AUTH_JWT_SECRET is not set; run: set -a; source .local/stack.env; set +a")
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    print(mint_token(settings, subject=args.sub, roles=roles, ttl_seconds=args.ttl))


if __name__ == "__main__":
    main()
