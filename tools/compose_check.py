"""``python -m tools.compose_check``: docker-compose.yml and the services' Dockerfiles, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (``tools/schemas/compose-spec.json``)
and against what the services need: every variable that reaches a dependency (derived from the settings classes),
the host binding and the published ports of CONTRACT.md, health checks, and a start order that puts Kafka, the
topics and the migrations first. Each Dockerfile is read statically: several stages, a non-root final user, a CMD,
a HEALTHCHECK, and COPY sources that exist in the build context and are not left out by ``.dockerignore``.
Exit status 0 when all is well, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import os
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import yaml
from pydantic_settings import BaseSettings

from policyloop_common.kafka.topics import all_topics

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"

# --------------------------------------------------------------------------------------------------------------------
# What the services need
# --------------------------------------------------------------------------------------------------------------------

KAFKA, KAFKA_TOPICS, POSTGRES, MIGRATE = "kafka", "kafka-topics", "postgres", "migrate"
HEALTHY, COMPLETED = "service_healthy", "service_completed_successfully"


@dataclass(frozen=True)
class AppService:
    """A policyloop service as compose runs it: its settings class, CONTRACT.md's port, whether it checks tokens."""

    name: str
    settings_class: str
    contract_port: int
    authenticated: bool

    @property
    def prefix(self) -> str:
        """The prefix of its HOST and PORT variables: ``feedback-api`` reads FEEDBACK_API_HOST."""
        return self.name.replace("-", "_")

    @property
    def dockerfile(self) -> str:
        """Its Dockerfile, relative to the repository root."""
        return f"services/{self.name}/Dockerfile"


APP_SERVICES = (
    AppService("feedback-api", "feedback_api.core.config:FeedbackApiSettings", 8001, authenticated=True),
    AppService("policy-generator", "policy_generator.config:GeneratorSettings", 8002, authenticated=False),
    AppService("policy-store", "policy_store.core.config:StoreSettings", 8003, authenticated=True),
)

# A settings field that points at a dependency, and the compose services that must be ready (or done) before a
# service holding that field starts. Which services need which follows from their settings classes.
CONNECTION_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "kafka_bootstrap_servers": ((KAFKA, HEALTHY), (KAFKA_TOPICS, COMPLETED)),
    "database_url": ((POSTGRES, HEALTHY), (MIGRATE, COMPLETED)),
}
# The one-shot jobs wait for the server they prepare.
JOB_PREREQUISITES: dict[str, tuple[tuple[str, str], ...]] = {
    KAFKA_TOPICS: ((KAFKA, HEALTHY),),
    MIGRATE: ((POSTGRES, HEALTHY),),
}
# A single broker holds one replica of everything; with Kafka's defaults (3) groups and transactions never start.
KAFKA_SINGLE_NODE = {
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
}
# Variables read by the interpreter or the libraries (OpenTelemetry's SDK) rather than by a settings class.
PROCESS_VARIABLES = {"HOME", "PATH", "TZ", "POLICYLOOP_SECRETS_DIR"}
PROCESS_VARIABLE_PREFIXES = ("PYTHON", "OTEL_")
ANY_ADDRESS = "0.0.0.0"


def is_process_variable(variable: str) -> bool:
    """True for a variable the interpreter or a library reads, which no settings class declares."""
    return variable in PROCESS_VARIABLES or variable.startswith(PROCESS_VARIABLE_PREFIXES)


@cache
def settings_class(reference: str) -> type[BaseSettings]:
    """The settings class named ``module:Class``."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def required_variables(service: AppService) -> list[str]:
    """The variables compose must set for ``service`` to bind where it can be reached and to find its dependencies."""
    fields = settings_class(service.settings_class).model_fields
    required = [f"{service.prefix}_host", f"{service.prefix}_port"]
    required += [name for name in CONNECTION_FIELDS if name in fields]
    if service.authenticated:
        required.append("auth_jwt_secret")
    return [name.upper() for name in required]


def startup_prerequisites(service: AppService) -> list[tuple[str, str]]:
    """The compose services, with their conditions, that ``service`` must wait for."""
    fields = settings_class(service.settings_class).model_fields
    return [needed for name, prerequisites in CONNECTION_FIELDS.items() if name in fields for needed in prerequisites]


# --------------------------------------------------------------------------------------------------------------------
# Compose: the schema
# --------------------------------------------------------------------------------------------------------------------

# The schema names formats of its own; Compose checks them the way Go parses them, so "10s" is a duration.
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0")
_PORT_RANGE = r"\d{1,5}(?:-\d{1,5})?"
_HOST_IP = r"(?:\[[0-9A-Fa-f:.]+\]|[0-9.]+)"
_PORTS = re.compile(rf"(?:(?:{_HOST_IP}:)?(?:{_PORT_RANGE})?:)?{_PORT_RANGE}(?:/(?:tcp|udp|sctp))?")
_EXPOSE = re.compile(rf"{_PORT_RANGE}(?:/(?:tcp|udp|sctp))?")


def _is_subnet(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


COMPOSE_FORMATS = {
    "duration": lambda value: _GO_DURATION.fullmatch(value) is not None,
    "ports": lambda value: _PORTS.fullmatch(value) is not None,
    "expose": lambda value: _EXPOSE.fullmatch(value) is not None,
    "subnet_ip_address": _is_subnet,
}


@cache
def _compose_validator(schema_path: Path) -> Any:
    schema = json.loads(schema_path.read_text())
    return jsonschema_rs.validator_for(schema, validate_formats=True, formats=COMPOSE_FORMATS)


def schema_problems(document: Any, schema_path: Path = COMPOSE_SCHEMA) -> list[str]:
    """Where ``document`` breaks the Compose Specification, one line per error."""
    problems = []
    for error in _compose_validator(schema_path).iter_errors(document):
        location = "/".join(str(part) for part in error.instance_path) or "(top level)"
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        problems.append(f"schema: {location}: {message}")
    return problems


# --------------------------------------------------------------------------------------------------------------------
# Compose: what the services need
# --------------------------------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?])(?P<word>[^}]*))?\}")


def with_defaults(value: Any) -> str:
    """``value`` as compose interpolates it with no variable set: defaults used, required variables left empty."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return match.group("word") if match.group("operator") in (":-", "-") else ""

    return _INTERPOLATION.sub(substitute, str(value)) if value is not None else ""


def environment_of(service: Mapping[str, Any]) -> dict[str, Any]:
    """A service's ``environment``, as a mapping whichever of the two forms the file uses."""
    environment = service.get("environment") or {}
    if isinstance(environment, Mapping):
        return dict(environment)
    return dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)


def depends_on_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``depends_on`` as name -> condition (the short form means service_started)."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, Mapping):
        return {name: (entry or {}).get("condition", "service_started") for name, entry in depends_on.items()}
    return {name: "service_started" for name in depends_on}


@dataclass(frozen=True)
class PublishedPort:
    """One entry of ``ports``: the port on the host and the port in the container."""

    published: int | None
    target: int


def published_ports(service: Mapping[str, Any]) -> list[PublishedPort]:
    """A service's single-port ``ports`` entries, short or long syntax, as (host, container) pairs."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            published = entry.get("published")
            ports.append(PublishedPort(int(published) if published is not None else None, int(entry["target"])))
            continue
        spec = with_defaults(entry).split("/", 1)[0]
        if spec.startswith("["):  # [::1]:8001:8001
            spec = spec[spec.index("]") + 2:]
        parts = spec.split(":")
        try:
            target = int(parts[-1])
            published = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        except ValueError:  # a range: never one of the services' single ports
            continue
        ports.append(PublishedPort(published, target))
    return ports


def one_shot_services(services: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The services others wait to see finish: jobs, which need no health check."""
    return {name for service in services.values() for name, condition in depends_on_of(service).items()
            if condition == COMPLETED}


def command_text(service: Mapping[str, Any]) -> str:
    """A service's ``command`` as one string, whichever of the two forms the file uses."""
    command = service.get("command") or ""
    return command if isinstance(command, str) else " ".join(map(str, command))


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("", "0", "root")


def _hosts_in(value: str) -> list[str]:
    """The host names in a bootstrap list (``a:9092,b:9092``) or a URL."""
    if "://" in value:
        host = urlsplit(value).hostname
        return [host] if host else []
    return [item.strip().rsplit(":", 1)[0] for item in value.split(",") if item.strip()]


def app_service_problems(app: AppService, services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What keeps ``app`` from starting, binding, being reached or reaching its dependencies under compose."""
    service = services.get(app.name)
    if service is None:
        return [f"{app.name}: missing from services"]
    problems = []
    environment = environment_of(service)
    fields = settings_class(app.settings_class).model_fields
    class_name = app.settings_class.rpartition(":")[2]
    host_variable, port_variable = f"{app.prefix}_HOST".upper(), f"{app.prefix}_PORT".upper()
    missing_fields = [name for name in (host_variable.lower(), port_variable.lower()) if name not in fields]
    if missing_fields:
        return [f"{app.name}: {class_name} has no field {', '.join(missing_fields)}; update tools/compose_check.py"]

    for variable in required_variables(app):
        if variable not in environment or environment[variable] in (None, ""):
            problems.append(f"{app.name}: environment does not set {variable}, which {class_name} needs")
    for variable in environment:
        if variable.lower() in fields or is_process_variable(variable):
            continue
        problems.append(f"{app.name}: environment sets {variable}, which {class_name} does not read (a typo?)")

    if host_variable in environment and with_defaults(environment[host_variable]) != ANY_ADDRESS:
        problems.append(f"{app.name}: {host_variable} must be {ANY_ADDRESS}; any other address is unreachable from "
                        f"outside the container")
    port = with_defaults(environment.get(port_variable)) or str(fields[port_variable.lower()].default)
    mapping = [entry for entry in published_ports(service) if entry.published == app.contract_port]
    if not mapping:
        problems.append(f"{app.name}: ports does not publish {app.contract_port}, its port in CONTRACT.md")
    elif str(mapping[0].target) != port:
        problems.append(f"{app.name}: host port {app.contract_port} goes to container port {mapping[0].target}, "
                        f"but {port_variable} is {port}")

    for variable in (name.upper() for name in CONNECTION_FIELDS if name in fields):
        for host in _hosts_in(with_defaults(environment.get(variable))):
            if host not in services:
                problems.append(f"{app.name}: {variable} names host {host!r}, which is no service of this file")

    depends_on = depends_on_of(service)
    for prerequisite, condition in startup_prerequisites(app):
        if depends_on.get(prerequisite) != condition:
            problems.append(f"{app.name}: depends_on must wait for {prerequisite} with condition {condition}")

    build = service.get("build")
    dockerfile = build.get("dockerfile") if isinstance(build, Mapping) else None
    if dockerfile != app.dockerfile:
        problems.append(f"{app.name}: build.dockerfile should be {app.dockerfile}, so compose runs this checkout")
    return problems


def hardening_problems(name: str, service: Mapping[str, Any]) -> list[str]:
    """A service built from this repository must run as it does in Kubernetes: read-only, /tmp writable, not root."""
    problems = []
    if service.get("read_only") is not True:
        problems.append(f"{name}: read_only must be true")
    tmpfs = service.get("tmpfs") or []
    if "/tmp" not in ([tmpfs] if isinstance(tmpfs, str) else [entry.split(":", 1)[0] for entry in tmpfs]):
        problems.append(f"{name}: tmpfs must include /tmp, the only place the services write to")
    user = str(service.get("user", ""))
    if _is_root(user) or not user.split(":", 1)[0].isdigit():
        problems.append(f"{name}: user must be a numeric id other than 0, not {user or 'unset'!r}")
    return problems


def infrastructure_problems(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Kafka set up for one node, every topic created, the jobs waiting for their servers, data kept in volumes."""
    problems = []
    for name in (KAFKA, KAFKA_TOPICS, POSTGRES, MIGRATE):
        if name not in services:
            problems.append(f"{name}: missing from services")
    if problems:
        return problems

    kafka_environment = environment_of(services[KAFKA])
    for variable, value in KAFKA_SINGLE_NODE.items():
        if with_defaults(kafka_environment.get(variable)) != value:
            problems.append(f"{KAFKA}: {variable} must be {value} on a single node (the generator uses transactions)")

    command_words = set(re.split(r"[\s\"';]+", command_text(services[KAFKA_TOPICS])))
    for topic in all_topics():
        if topic not in command_words:
            problems.append(f"{KAFKA_TOPICS}: the command does not create topic {topic}")
    if "policy_store.migrate" not in command_text(services[MIGRATE]).split():
        problems.append(f"{MIGRATE}: the command must run python -m policy_store.migrate")

    for job, prerequisites in JOB_PREREQUISITES.items():
        depends_on = depends_on_of(services[job])
        for prerequisite, condition in prerequisites:
            if depends_on.get(prerequisite) != condition:
                problems.append(f"{job}: depends_on must wait for {prerequisite} with condition {condition}")

    for name in (KAFKA, POSTGRES):
        if not any(volume.source for volume in volume_mounts(services[name]) if volume.named):
            problems.append(f"{name}: its data must be on a named volume, so that it outlives the container")
    return problems


@dataclass(frozen=True)
class VolumeMount:
    """One entry of a service's ``volumes``."""

    source: str
    named: bool


def volume_mounts(service: Mapping[str, Any]) -> list[VolumeMount]:
    """A service's ``volumes``, short or long syntax; a source that is no path names a volume."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, Mapping):
            source = str(entry.get("source", ""))
            mounts.append(VolumeMount(source, entry.get("type", "volume") == "volume" and bool(source)))
            continue
        parts = str(entry).split(":")
        source = parts[0] if len(parts) > 1 else ""
        mounts.append(VolumeMount(source, bool(source) and not source.startswith((".", "/", "~", "$"))))
    return mounts


def structure_problems(document: Mapping[str, Any], project_dir: Path) -> list[str]:
    """Health checks, builds and volumes across all services."""
    services: Mapping[str, Mapping[str, Any]] = document.get("services") or {}
    declared_volumes = set(document.get("volumes") or {})
    jobs = one_shot_services(services)
    problems = []
    for name, service in services.items():
        healthcheck = service.get("healthcheck") or {}
        if name not in jobs and (not healthcheck.get("test") or healthcheck.get("disable")):
            problems.append(f"{name}: a long-running service needs a healthcheck, so dependants can wait for it")
        build = service.get("build")
        if build is not None:
            context = project_dir / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            elif not dockerfile.is_file():
                problems.append(f"{name}: build.dockerfile {dockerfile} does not exist")
            problems += hardening_problems(name, service)
        for volume in volume_mounts(service):
            if volume.named and volume.source not in declared_volumes:
                problems.append(f"{name}: volume {volume.source!r} is not declared under the top-level volumes")
    return problems


def check_compose(path: Path = COMPOSE_FILE, *, project_dir: Path | None = None,
                  schema_path: Path = COMPOSE_SCHEMA) -> list[str]:
    """Every problem of the compose file at ``path``; build contexts are relative to ``project_dir``."""
    project_dir = project_dir or path.parent
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        return [f"{path}: cannot be read as YAML: {error}"]
    problems = schema_problems(document, schema_path)
    if problems or not isinstance(document, Mapping):
        # The checks below assume the shapes the schema guarantees.
        return [f"{path.name}: {problem}" for problem in problems or ["not a mapping"]]
    services = document.get("services") or {}
    problems += structure_problems(document, project_dir)
    problems += infrastructure_problems(services)
    for app in APP_SERVICES:
        problems += app_service_problems(app, services)
    return [f"{path.name}: {problem}" for problem in problems]


# --------------------------------------------------------------------------------------------------------------------
# Dockerfiles
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile (default escape character, no heredocs)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):  # Docker drops these inside a continuation
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        keyword, _, arguments = " ".join(part.strip() for part in pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    return instructions


def stages(instructions: Iterable[Instruction]) -> list[list[Instruction]]:
    """The instructions grouped by build stage, each group starting with its FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def copy_sources(instruction: Instruction) -> list[str] | None:
    """The build-context sources of a COPY or ADD; None when it copies from a stage or an image."""
    flags, rest = [], instruction.arguments
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    if any(flag.startswith("--from=") for flag in flags):
        return None
    paths = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return paths[:-1]


class DockerIgnore:
    """The patterns of a ``.dockerignore``, matched as Docker does: the last matching pattern wins, and a pattern
    that matches a parent directory matches everything in it."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._patterns: list[tuple[re.Pattern[str], bool]] = []
        for line in lines:
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negated = pattern.startswith("!")
            pattern = os.path.normpath(pattern.lstrip("!").strip().lstrip("/"))
            self._patterns.append((re.compile(self._regex(pattern)), negated))

    @classmethod
    def of_context(cls, context: Path) -> DockerIgnore:
        """The ``.dockerignore`` at the root of ``context``; none means nothing is left out."""
        path = context / ".dockerignore"
        return cls(path.read_text().splitlines() if path.is_file() else [])

    @staticmethod
    def _regex(pattern: str) -> str:
        regex, index = "", 0
        while index < len(pattern):
            char = pattern[index]
            if pattern.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
                continue
            if pattern.startswith("**", index):
                regex, index = regex + ".*", index + 2
                continue
            if char == "*":
                regex += "[^/]*"
            elif char == "?":
                regex += "[^/]"
            elif char == "[":
                end = pattern.find("]", index + 1)
                if end == -1:
                    regex += re.escape(char)
                else:
                    regex += "[" + pattern[index + 1:end].replace("\\", "\\\\") + "]"
                    index = end
            else:
                regex += re.escape(char)
            index += 1
        return regex

    def excludes(self, relative_path: str) -> bool:
        """True when the file or directory at ``relative_path`` (relative to the context) is not sent to the build."""
        parts = Path(relative_path).parts
        candidates = ["/".join(parts[:length]) for length in range(1, len(parts) + 1)]
        excluded = False
        for pattern, negated in self._patterns:
            if any(pattern.fullmatch(candidate) for candidate in candidates):
                excluded = not negated
        return excluded


def _files_under(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for directory, _, names in os.walk(path):
        for name in names:
            yield Path(directory) / name


def _copy_source_problems(source: str, context: Path, ignore: DockerIgnore) -> list[str]:
    if "$" in source:
        return [f"COPY source {source!r} uses a variable, which this check cannot follow"]
    matches = sorted(context.glob(source)) if any(char in source for char in "*?[") else [context / source]
    matches = [match for match in matches if match.exists()]
    if not matches:
        return [f"COPY source {source!r} does not exist in the build context"]
    for match in matches:
        sent = [file for file in _files_under(match) if not ignore.excludes(file.relative_to(context).as_posix())]
        if not sent:
            return [f"COPY source {source!r} is left out of the build context by .dockerignore"]
    return []


def check_dockerfile(path: Path, *, context: Path = REPO_ROOT) -> list[str]:
    """Every problem of the Dockerfile at ``path`` built with ``context`` as its build context."""
    try:
        instructions = parse_dockerfile(path.read_text())
    except OSError as error:
        return [f"{path}: cannot be read: {error}"]
    try:
        shown = path.resolve().relative_to(context.resolve()).as_posix()
    except ValueError:
        shown = str(path)
    grouped = stages(instructions)
    problems = []
    if len(grouped) < 2:
        problems.append(f"{shown}: needs a build stage and a runtime stage (found {len(grouped)} FROM)")
    if grouped:
        final = grouped[-1]
        users = [instruction for instruction in final if instruction.keyword == "USER"]
        if not users:
            problems.append(f"{shown}: the final stage has no USER, so it runs as root")
        elif _is_root(users[-1].arguments) or not users[-1].arguments.split(":", 1)[0].isdigit():
            problems.append(f"{shown}: line {users[-1].line}: the final stage runs as {users[-1].arguments!r}; it must "
                            f"be a numeric id other than 0, which Kubernetes' runAsNonRoot can verify")
        if not any(instruction.keyword == "CMD" for instruction in final):
            problems.append(f"{shown}: the final stage has no CMD")
        healthchecks = [instruction for instruction in final if instruction.keyword == "HEALTHCHECK"]
        if not healthchecks or healthchecks[-1].arguments.upper() == "NONE":
            problems.append(f"{shown}: the final stage has no HEALTHCHECK")
    ignore = DockerIgnore.of_context(context)
    for instruction in instructions:
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        for source in copy_sources(instruction) or []:
            if instruction.keyword == "ADD" and "://" in source:
                continue
            problems += [f"{shown}: line {instruction.line}: {problem}"
                         for problem in _copy_source_problems(source, context, ignore)]
    return problems


# --------------------------------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------------------------------


def dockerfiles(root: Path = REPO_ROOT) -> list[Path]:
    """The services' Dockerfiles."""
    return sorted(root.glob("services/*/Dockerfile"))


def check_all(root: Path = REPO_ROOT) -> list[str]:
    """Every problem of the repository's docker-compose.yml and the services' Dockerfiles."""
    problems = check_compose(root / "docker-compose.yml", project_dir=root)
    for dockerfile in dockerfiles(root):
        problems += check_dockerfile(dockerfile, context=root)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the files, print what is wrong, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.compose_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--compose", type=Path, help="check this compose file instead of the repository's")
    parser.add_argument("--dockerfile", type=Path, action="append", default=[],
                        help="check this Dockerfile instead of the services' (repeatable)")
    parser.add_argument("--context", type=Path, default=REPO_ROOT,
                        help="build context and compose project directory (default: the repository root)")
    args = parser.parse_args(argv)
    if args.compose or args.dockerfile:
        problems = check_compose(args.compose, project_dir=args.context) if args.compose else []
        for dockerfile in args.dockerfile:
            problems += check_dockerfile(dockerfile, context=args.context)
        checked = [str(path) for path in ([args.compose] if args.compose else []) + args.dockerfile]
    else:
        problems = check_all(args.context)
        checked = ["docker-compose.yml", *(path.relative_to(args.context).as_posix()
                                           for path in dockerfiles(args.context))]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {', '.join(checked)}", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(checked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
