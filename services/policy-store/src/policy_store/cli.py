"""``policy-store-admin``: the operator's command line for policies.

    policy-store-admin list [--status active] [--category …] [--priority …] [--limit 50] [--json]
    policy-store-admin show POLICY_ID [--history]
    policy-store-admin approve|reject|retire POLICY_ID [--reason …]
    policy-store-admin supersede POLICY_ID --by SUCCESSOR_ID [--reason …]
    policy-store-admin export [--status active …] [--output policies.json]
    policy-store-admin import policies.json
    policy-store-admin rebuild --target-database-url postgresql+psycopg://…/policyloop_rebuilt [--resume]
    policy-store-admin reanalyze [FEEDBACK_ID …] [--all] [--status S …] [--reason R …] [--submitted-after ISO]
                                 [--submitted-before ISO] [--run-id ID] [--why TEXT] [--page-size 500]
                                 [--wait] [--timeout 600]
    policy-store-admin reanalyze --run-id ID --wait       (follow a run already requested)

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
import time
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


# How often ``reanalyze --wait`` asks how far the run is.
POLL_SECONDS = 2.0
MAX_IDS_PER_CALL = 1000


def cmd_reanalyze(args: argparse.Namespace) -> None:
    """Request re-analysis page by page through the API, then, with ``--wait``, follow the run until decided."""
    from policy_store.reanalysis import new_run_id

    selection = _reanalysis_selection(args)
    if not selection and not args.all and not (args.run_id and args.wait):
        args.usage_error("name the feedback to re-analyse (ids, --status, --reason, --submitted-after/-before), "
                         "or --all; or follow a run with --run-id ID --wait")
    client = _client(args)
    # Chosen here, not by the server: a page that fails can be retried in the same run, which changes nothing.
    run_id = args.run_id or new_run_id()
    summary: dict = {"run_id": run_id, "status_url": f"/v1/reanalysis/{run_id}"}
    if selection or args.all:
        summary.update(_request_run(client, run_id, selection, args))
        err.print(f"run {run_id}: {summary['requested']} feedbacks requested"
                  + (f", {len(summary['skipped_ids'])} skipped" if summary["skipped_ids"] else ""))
        if summary["requested"] == 0 and not args.run_id:
            err.print("nothing to re-analyse: no feedback matches (negative, with its submission stored)")
            print(json.dumps(summary, ensure_ascii=False))
            return
        if not args.wait:
            err.print(f"follow it: policy-store-admin reanalyze --run-id {run_id} --wait "
                      f"(or GET {args.store_url.rstrip('/')}/v1/reanalysis/{run_id})")
    if args.wait:
        status = _wait_for_run(client, run_id, args.timeout)
        summary["run"] = status
        _print_outcomes(status)
        if not status["done"]:
            print(json.dumps(summary, ensure_ascii=False))
            raise CommandFailed(f"run {run_id}: {status['requested'] - status['decided']} of {status['requested']} "
                                f"not decided after {args.timeout:g}s; it goes on — follow it again with "
                                f"--run-id {run_id} --wait")
    print(json.dumps(summary, ensure_ascii=False))


def _reanalysis_selection(args: argparse.Namespace) -> dict:
    """The request body's filters from the command line; empty when none is given."""
    selection = {"feedback_ids": args.feedback_ids or None, "statuses": args.status, "reasons": args.reason,
                 "submitted_after": args.submitted_after, "submitted_before": args.submitted_before}
    return {name: value for name, value in selection.items() if value}


def _request_run(client: StoreClient, run_id: str, selection: dict, args: argparse.Namespace) -> dict:
    """Every page of the selection requested in run ``run_id``; what was requested and skipped."""
    body = {**selection, "run_id": run_id, "all": args.all, "limit": args.page_size,
            **({"reason": args.why} if args.why else {})}
    ids = selection.get("feedback_ids") or []
    # The API takes up to MAX_IDS_PER_CALL ids per selection; more are requested a slice at a time.
    bodies = [{**body, "feedback_ids": ids[start:start + MAX_IDS_PER_CALL]}
              for start in range(0, len(ids), MAX_IDS_PER_CALL)] or [body]
    requested, skipped, total = 0, [], 0
    with _progress() as progress:
        task = progress.add_task("requesting", total=None)
        for sliced in bodies:
            cursor = None
            while True:
                try:
                    page = client.request("POST", "/v1/reanalysis", json={**sliced, "cursor": cursor}).json()
                except CommandFailed as error:
                    raise CommandFailed(f"{error} — {requested} requested so far; run the same command with "
                                        f"--run-id {run_id} to go on (requests already made change nothing)"
                                        ) from error
                requested += page["requested"]
                skipped += page["skipped_ids"]
                if cursor is None:
                    total += page["selected"]
                # Feedback submitted meanwhile may join the pages still to come: the bar never ends before the work.
                progress.update(task, completed=requested, total=max(total, requested))
                cursor = page["next_cursor"]
                if cursor is None:
                    break
    return {"requested": requested, "selected": total, "skipped_ids": skipped}


def _wait_for_run(client: StoreClient, run_id: str, timeout: float) -> dict:
    """The run's status once every request is decided, or when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task("deciding", total=None)
        while True:
            status = client.request("GET", f"/v1/reanalysis/{_path(run_id)}").json()
            progress.update(task, completed=status["decided"], total=status["requested"])
            if status["done"] or time.monotonic() >= deadline:
                return status
            time.sleep(POLL_SECONDS)


def _print_outcomes(status: dict) -> None:
    table = Table(title=f"{status['decided']} of {status['requested']} decided")
    table.add_column("outcome")
    table.add_column("feedbacks", justify="right")
    for outcome, count in status["outcomes"].items():
        table.add_row(outcome, str(count))
    if status.get("policies_created"):
        table.add_row("new policies", str(len(status["policies_created"])))
    err.print(table)


def _timestamp(text: str) -> str:
    """An ISO 8601 time for the API; one without a zone is read as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from error
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


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

    reanalyze = commands.add_parser("reanalyze", help="have the generator decide feedback again (a run)")
    reanalyze.add_argument("feedback_ids", nargs="*", metavar="FEEDBACK_ID", help="these feedbacks")
    reanalyze.add_argument("--all", action="store_true", help="every feedback that can be re-analysed")
    reanalyze.add_argument("--status", action="append", choices=["pending", "generated", "skipped", "failed"],
                           help="feedback whose status is this (repeatable)")
    reanalyze.add_argument("--reason", action="append", metavar="REASON",
                           help="feedback skipped or failed for this reason, e.g. not_actionable (repeatable)")
    reanalyze.add_argument("--submitted-after", type=_timestamp, metavar="ISO",
                           help="submitted at or after this time (UTC if no zone)")
    reanalyze.add_argument("--submitted-before", type=_timestamp, metavar="ISO",
                           help="submitted before this time (UTC if no zone)")
    reanalyze.add_argument("--run-id", metavar="ID",
                           help="repeat or resume this run (default: a new rrun-<time>-<hex>)")
    reanalyze.add_argument("--why", metavar="TEXT", help="why the run is made; kept with each request")
    reanalyze.add_argument("--page-size", type=int, default=500, choices=range(1, 1001), metavar="1..1000",
                           help="feedbacks requested per API call (default 500)")
    reanalyze.add_argument("--wait", action="store_true", help="then follow the run until every request is decided")
    reanalyze.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                           help="seconds --wait follows the run before giving up with exit 1 (default 600)")
    reanalyze.set_defaults(handler=cmd_reanalyze, usage_error=reanalyze.error)
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
