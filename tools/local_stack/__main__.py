"""``python -m tools.local_stack up|down|status|env``: the local stack of CONTRACT.md."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

import httpx

from tools.local_stack.example import REPORT_EXAMPLE
from tools.local_stack.kafka import KafkaBroker
from tools.local_stack.postgres import PostgresServer
from tools.local_stack.processes import read_pid
from tools.local_stack.services import SERVICES, service_url, start_service, stop_service

ROOT = Path(__file__).resolve().parents[2]
# POLICYLOOP_LOCAL_DIR lets a second stack (a test's, say) live beside the developer's.
LOCAL = Path(os.environ.get("POLICYLOOP_LOCAL_DIR", ROOT / ".local")).resolve()
RUN, LOG, DATA = LOCAL / "run", LOCAL / "log", LOCAL / "data"
STACK_ENV = LOCAL / "stack.env"
SECRETS_ENV = LOCAL / "secrets.env"
DATABASE = "policyloop"


def _int_env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def kafka_broker() -> KafkaBroker:
    """The stack's broker; ports from KAFKA_PORT / KAFKA_CONTROLLER_PORT."""
    return KafkaBroker(home=DATA / "kafka", port=_int_env("KAFKA_PORT", 9092),
                       controller_port=_int_env("KAFKA_CONTROLLER_PORT", 9093), pid_file=RUN / "kafka.pid")


def postgres_server() -> PostgresServer:
    """The stack's database server; port from POSTGRES_PORT."""
    return PostgresServer(home=DATA / "postgres", port=_int_env("POSTGRES_PORT", 5433))


def _stable_secrets() -> dict[str, str]:
    """Secrets generated on the first ``up`` and kept, so tokens stay valid across restarts."""
    values = _read_env_file(SECRETS_ENV)
    changed = False
    for name in ("AUTH_JWT_SECRET", "ANSWER_RECEIPT_SECRET"):
        if not values.get(name):
            values[name] = secrets.token_urlsafe(48)
            changed = True
    if changed:
        LOCAL.mkdir(parents=True, exist_ok=True)
        SECRETS_ENV.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        SECRETS_ENV.chmod(0o600)
    return values


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def stack_environment(kafka: KafkaBroker, postgres: PostgresServer) -> dict[str, str]:
    """The variables of ``.local/stack.env`` and of every service process."""
    values = _stable_secrets()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "DATABASE_URL": postgres.url(DATABASE),
        "AUTH_JWT_SECRET": values["AUTH_JWT_SECRET"],
        "AUTH_JWT_ISSUER": os.environ.get("AUTH_JWT_ISSUER", "policyloop-local"),
        "AUTH_JWT_AUDIENCE": os.environ.get("AUTH_JWT_AUDIENCE", "policyloop"),
        "AUTH_JWT_ALGORITHM": "HS256",
        "FEEDBACK_API_PORT": os.environ.get("FEEDBACK_API_PORT", "8001"),
        "POLICY_GENERATOR_PORT": os.environ.get("POLICY_GENERATOR_PORT", "8002"),
        "POLICY_STORE_PORT": os.environ.get("POLICY_STORE_PORT", "8003"),
        "REQUIRE_ANSWER_RECEIPT": os.environ.get("REQUIRE_ANSWER_RECEIPT", "false"),
    }
    if env["REQUIRE_ANSWER_RECEIPT"].lower() == "true":
        env["ANSWER_RECEIPT_SECRET"] = os.environ.get("ANSWER_RECEIPT_SECRET", values["ANSWER_RECEIPT_SECRET"])
    for spec in SERVICES:
        env[f"{spec.name.replace('-', '_').upper()}_URL"] = service_url(spec, env)
    # Provider settings pass through when set, so `OPENAI_API_KEY=… make up` uses OpenAI.
    for name in ("LLM_PROVIDER", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "KAFKA_PARTITIONS",
                 "AUTO_ACTIVATE", "LOG_LEVEL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def up(args: argparse.Namespace) -> int:
    """Start whatever is not running, leave the rest, and show the report's example going through."""
    from policyloop_common.kafka.topics import all_topics, ensure_topics

    for directory in (RUN, LOG, DATA):
        directory.mkdir(parents=True, exist_ok=True)
    kafka, postgres = kafka_broker(), postgres_server()
    _step("kafka", kafka.start)
    _step("postgres", postgres.start)
    if postgres.pid():
        (RUN / "postgres.pid").write_text(f"{postgres.pid()}\n")
    postgres.create_database(DATABASE)
    env = stack_environment(kafka, postgres)
    partitions = int(env.get("KAFKA_PARTITIONS", "6"))
    created = ensure_topics({"bootstrap.servers": kafka.bootstrap}, all_topics(), partitions=partitions)
    if created:
        print(f"  topics created: {', '.join(created)}")
    process_env = {**os.environ, **env}
    _migrate(process_env)
    for spec in SERVICES:
        _step(spec.name, lambda spec=spec: start_service(spec, env=process_env, run_dir=RUN, log_dir=LOG))
    STACK_ENV.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    print(f"stack ready; environment in {STACK_ENV}, logs in {LOG}/")
    if not args.no_example:
        return show_example(env)
    return 0


def _step(name: str, action) -> None:
    started = time.monotonic()
    print(f"  {name}: starting…", flush=True)
    action()
    print(f"  {name}: ready ({time.monotonic() - started:.1f}s)", flush=True)


def _migrate(env: dict[str, str]) -> None:
    import subprocess

    result = subprocess.run([sys.executable, "-m", "policy_store.migrate"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{result.stdout}\n{result.stderr}")
    print("  migrations: applied")


def show_example(env: dict[str, str], timeout: float = 60.0) -> int:
    """Post the report's example feedback and print the policy it leads to."""
    from policyloop_common.auth import mint_token
    from policyloop_common.settings import ServiceSettings

    settings = ServiceSettings(auth_jwt_secret=env["AUTH_JWT_SECRET"], auth_jwt_issuer=env["AUTH_JWT_ISSUER"],
                               auth_jwt_audience=env["AUTH_JWT_AUDIENCE"])
    admin = {"Authorization": f"Bearer {mint_token(settings, subject='local-admin', roles=['admin'])}"}
    # The same key on every run: the example is posted once and later runs show the same result.
    response = httpx.post(f"{env['FEEDBACK_API_URL']}/v1/feedback", json=REPORT_EXAMPLE,
                          headers={**admin, "Idempotency-Key": "make-up-example", "Accept-Language": "en"},
                          timeout=30)
    if response.status_code != 202:
        print(f"example feedback refused: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    accepted = response.json()
    print(f"\nexample feedback accepted: {accepted['feedback_id']} ({accepted['message']})")
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        reply = httpx.get(f"{env['POLICY_STORE_URL']}{accepted['status_url']}", headers=admin, timeout=10)
        if reply.status_code == 200 and reply.json()["status"] != "pending":
            status = reply.json()
            break
        time.sleep(0.5)
    if not status:
        print("no decision within {timeout:.0f}s; see .local/log/", file=sys.stderr)
        return 1
    print(f"decision: {json.dumps(status)}")
    if status.get("policy_id"):
        policy = httpx.get(f"{env['POLICY_STORE_URL']}/v1/policies/{status['policy_id']}", headers=admin,
                           timeout=10).json()
        print("policy:")
        print(json.dumps(policy, indent=2, ensure_ascii=False))
    return 0


def down(_: argparse.Namespace) -> int:
    """Stop everything; the data stays for the next ``up``."""
    for spec in reversed(SERVICES):
        if stop_service(spec, RUN):
            print(f"  {spec.name}: stopped")
    if postgres_server().stop():
        print("  postgres: stopped")
    (RUN / "postgres.pid").unlink(missing_ok=True)
    if kafka_broker().stop():
        print("  kafka: stopped")
    return 0


def status(_: argparse.Namespace) -> int:
    """Say what runs."""
    names = ["kafka", "postgres", *(spec.name for spec in SERVICES)]
    for name in names:
        pid = read_pid(RUN / f"{name}.pid")
        print(f"{name:18} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


def main() -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(prog="python -m tools.local_stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the stack (idempotent)")
    up_parser.add_argument("--no-example", action="store_true", help="do not post the example feedback")
    commands.add_parser("down", help="stop the stack, keep the data")
    commands.add_parser("status", help="show what runs")
    args = parser.parse_args()
    try:
        return {"up": up, "down": down, "status": status}[args.command](args)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
