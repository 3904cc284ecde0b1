"""``policy-store-admin``: the operator's command line for policies.

    policy-store-admin list [--status active] [--category …] [--priority …] [--limit 50] [--json]
    policy-store-admin show POLICY_ID [--history]
    policy-store-admin approve|reject|retire POLICY_ID [--reason …]
    policy-store-admin supersede POLICY_ID --by SUCCESSOR_ID [--reason …]
    policy-store-admin export [--status active …] [--output policies.json]
    policy-store-admin import policies.json
    policy-store-admin rebuild --target-database-url postgresql+psycopg://…/policyloop_rebuilt [--resume]

Everything but ``rebuild`` goes through policy-store's HTTP API (``POLICY_STORE_URL``), so an operator's action is
checked, recorded in the history and published to Kafka exactly like a reviewer's. The token is
``POLICYLOOP_ADMIN_TOKEN``, or, where ``AUTH_JWT_SECRET`` is at hand (the local stack), a short-lived admin token
minted for ``--actor``. ``rebuild`` reads the topics itself (``KAFKA_*``) and writes the target database.

Errors print the API's message and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from policyloop_common.auth import mint_token
from policyloop_common.policy import PolicyCategory, PolicyPriority, PolicyStatus

EXPORT_FORMAT = "policyloop-policies/1"
PAGE_SIZE = 200
err = Console(stderr=True)


class CommandFailed(RuntimeError):
    """An API call or an operation failed; the message is for the operator."""


class StoreClient:
    """policy-store's API with an admin token."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One call; a non-2xx answer becomes a :class:`CommandFailed` with the API's own message."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise CommandFailed(f"policy-store at {self._http.base_url} is unreachable: {error}") from error
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            detail = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            detail = f"HTTP {response.status_code}: {response.text[:300]}"
        raise CommandFailed(f"{method} {path} failed — {detail}")

    def policies(self, status: str, **filters: str | None) -> Iterator[dict]:
        """Every policy with ``status`` (and filters), following the cursor page by page."""
        params = {"status": status, "limit": PAGE_SIZE, **{k: v for k, v in filters.items() if v}}
        while True:
            page = self.request("GET", "/v1/policies", params=params).json()
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()


def _path(policy_id: str) -> str:
    """A policy id as one path segment: ids may hold any character, '/' and controls included."""
    return quote(policy_id, safe="")


def admin_token(actor: str) -> str:
    """The operator's bearer token: given, or minted where the signing secret is known (the local stack)."""
    if token := os.environ.get("POLICYLOOP_ADMIN_TOKEN"):
        return token
    if os.environ.get("AUTH_JWT_SECRET"):
        from policyloop_common.settings import ServiceSettings

        return mint_token(ServiceSettings(service_name="policy-store-admin"), subject=actor, roles=["admin"],
                          ttl_seconds=600)
    raise CommandFailed("no token: set POLICYLOOP_ADMIN_TOKEN (an admin bearer token), or, on the local stack, "
                        "`set -a; source .local/stack.env; set +a` so one can be minted")


def _client(args: argparse.Namespace) -> StoreClient:
    return StoreClient(args.store_url, admin_token(args.actor))


def cmd_list(args: argparse.Namespace) -> None:
    """Policies of one status, newest first."""
    client = _client(args)
    items = []
    for policy in client.policies(args.status, category=args.category, priority=args.priority):
        items.append(policy)
        if len(items) >= args.limit:
            break
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(items)} {args.status} policies", show_lines=False)
    for column in ("policy_id", "v", "category", "priority", "support", "rule"):
        table.add_column(column, overflow="fold")
    for policy in items:
        table.add_row(policy["policy_id"], str(policy["version"]), policy["category"], policy["priority"],
                      str(policy["support_count"]), policy["rule"])
    Console().print(table)


def cmd_show(args: argparse.Namespace) -> None:
    """One policy, and its history on request."""
    client = _client(args)
    document = client.request("GET", f"/v1/policies/{_path(args.policy_id)}").json()
    if args.history:
        document = {**document, "history": client.request("GET", f"/v1/policies/{_path(args.policy_id)}/history")
                    .json()["items"]}
    print(json.dumps(document, ensure_ascii=False, indent=2))


def cmd_review(args: argparse.Namespace) -> None:
    """approve / reject / retire, with an optional reason."""
    body = {"reason": args.reason} if args.reason else None
    policy = _client(args).request("POST", f"/v1/policies/{_path(args.policy_id)}/{args.command}", json=body).json()
    err.print(f"{policy['policy_id']} is now {policy['status']}")
    print(json.dumps(policy, ensure_ascii=False))


def cmd_supersede(args: argparse.Namespace) -> None:
    """Replace a policy by another; both keep the link."""
    body = {"superseded_by": args.by, **({"reason": args.reason} if args.reason else {})}
    policy = _client(args).request("POST", f"/v1/policies/{_path(args.policy_id)}/supersede", json=body).json()
    err.print(f"{policy['policy_id']} is now {policy['status']}, superseded by {policy['superseded_by']}")
    print(json.dumps(policy, ensure_ascii=False))


def cmd_export(args: argparse.Namespace) -> None:
    """Policies of the chosen statuses, with their history, as one JSON document."""
    client = _client(args)
    statuses = args.status or [status.value for status in PolicyStatus]
    exported = []
    with _progress() as progress:
        task = progress.add_task("exporting", total=None)
        for status in statuses:
            for policy in client.policies(status):
                history = client.request("GET", f"/v1/policies/{_path(policy['policy_id'])}/history").json()["items"]
                exported.append({**policy, "history": history})
                progress.advance(task)
    document = {"format": EXPORT_FORMAT, "exported_at": datetime.now(UTC).isoformat(),
                "source": args.store_url, "policies": exported}
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    err.print(f"exported {len(exported)} policies to {args.output}")


def cmd_import(args: argparse.Namespace) -> None:
    """Policies of an export into this store, through the API; already present ids are left as they are."""
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CommandFailed(f"cannot read {args.file}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise CommandFailed(f"{args.file} is not a policy export (format {EXPORT_FORMAT!r} expected)")
    client = _client(args)
    counts = {"imported": 0, "already_present": 0}
    with _progress() as progress:
        task = progress.add_task("importing", total=len(document["policies"]))
        for policy in document["policies"]:
            body = {key: value for key, value in policy.items() if key != "history"}
            result = client.request("POST", "/v1/policies/import", json=body,
                                    params={"origin": document.get("source") or args.file}).json()
            counts["imported" if result.get("imported") else "already_present"] += 1
            progress.advance(task)
    print(json.dumps(counts))


def cmd_rebuild(args: argparse.Namespace) -> None:
    """Replay the topics from the beginning into the target database."""
    from policy_store.core.config import StoreSettings
    from policy_store.core.db import make_engine, make_session_factory
    from policy_store.materializer import Materializer
    from policy_store.migrate import upgrade
    from policy_store.rebuild import RebuildRefused, rebuild

    settings = StoreSettings(service_name="policy-store-rebuild")
    upgrade(args.target_database_url)
    engine = make_engine(args.target_database_url)
    try:
        with _progress() as progress:
            task = progress.add_task("rebuilding", total=None)
            report = rebuild(settings.kafka_config(), settings.consumed_topics, make_session_factory(engine),
                             Materializer(auto_activate=settings.auto_activate), resume=args.resume,
                             progress=lambda done, total: progress.update(task, completed=done, total=total))
    except RebuildRefused as error:
        raise CommandFailed(str(error)) from error
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict()))


def _progress() -> Progress:
    # On stderr, so that stdout stays machine-readable (JSON) for scripts.
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=False)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="policy-store-admin", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store-url", default=os.environ.get("POLICY_STORE_URL", "http://127.0.0.1:8003"),
                        help="policy-store's base URL (POLICY_STORE_URL)")
    parser.add_argument("--actor", default=f"operator:{getpass.getuser()}",
                        help="who acts, when a token is minted (default operator:<login>)")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="policies of one status, newest first")
    listing.add_argument("--status", default="active", choices=[s.value for s in PolicyStatus])
    listing.add_argument("--category", choices=[c.value for c in PolicyCategory])
    listing.add_argument("--priority", choices=[p.value for p in PolicyPriority])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=cmd_list)

    show = commands.add_parser("show", help="one policy as JSON")
    show.add_argument("policy_id")
    show.add_argument("--history", action="store_true", help="with every change: who, when, why")
    show.set_defaults(handler=cmd_show)

    for action, text in (("approve", "pending_review → active"), ("reject", "pending_review or active → rejected"),
                         ("retire", "active or pending_review → retired")):
        review = commands.add_parser(action, help=text)
        review.add_argument("policy_id")
        review.add_argument("--reason", help="why; kept in the policy's history")
        review.set_defaults(handler=cmd_review)

    supersede = commands.add_parser("supersede", help="active or pending_review → superseded by another policy")
    supersede.add_argument("policy_id")
    supersede.add_argument("--by", required=True, help="the successor's policy id")
    supersede.add_argument("--reason", help="why; kept in the policy's history")
    supersede.set_defaults(handler=cmd_supersede)

    export = commands.add_parser("export", help="policies with their history as JSON")
    export.add_argument("--status", action="append", choices=[s.value for s in PolicyStatus],
                        help="repeatable; default: every status")
    export.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
    export.set_defaults(handler=cmd_export)

    importing = commands.add_parser("import", help="policies from an export file")
    importing.add_argument("file")
    importing.set_defaults(handler=cmd_import)

    rebuild = commands.add_parser("rebuild", help="replay the topics from the beginning into an empty database")
    rebuild.add_argument("--target-database-url", required=True,
                         help="SQLAlchemy URL of the database to fill (created tables by migration; must be empty)")
    rebuild.add_argument("--resume", action="store_true", help="continue an interrupted rebuild of this database")
    rebuild.set_defaults(handler=cmd_rebuild)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 on failure."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except CommandFailed as error:
        err.print(f"[red]error:[/red] {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
