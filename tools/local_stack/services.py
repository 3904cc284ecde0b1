"""Starting the three policyloop services as local processes and waiting for their readiness."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tools.local_stack.processes import read_pid, spawn, stop, wait_until


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service: its console module and the environment variable holding its port."""

    name: str
    module: str
    port_variable: str
    default_port: int


SERVICES = (
    ServiceSpec("feedback-api", "feedback_api.main", "FEEDBACK_API_PORT", 8001),
    ServiceSpec("policy-store", "policy_store.main", "POLICY_STORE_PORT", 8003),
    ServiceSpec("policy-generator", "policy_generator.main", "POLICY_GENERATOR_PORT", 8002),
)


def service_url(spec: ServiceSpec, env: Mapping[str, str]) -> str:
    """The base URL the service listens on."""
    return f"http://127.0.0.1:{env.get(spec.port_variable, spec.default_port)}"


def ready(url: str) -> bool:
    """True when ``GET url/readyz`` answers 200."""
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_service(spec: ServiceSpec, *, env: Mapping[str, str], run_dir: Path, log_dir: Path,
                  timeout: float = 120.0) -> bool:
    """Start ``spec`` unless it runs; wait for its readiness. True if it was started now."""
    pid_file = run_dir / f"{spec.name}.pid"
    log_file = log_dir / f"{spec.name}.log"
    started = False
    if read_pid(pid_file) is None:
        spawn([sys.executable, "-m", spec.module], pid_file=pid_file, log_file=log_file, env=env)
        started = True
    wait_until(lambda: ready(service_url(spec, env)), timeout=timeout, what=spec.name,
               alive=lambda: read_pid(pid_file) is not None, log_file=log_file)
    return started


def stop_service(spec: ServiceSpec, run_dir: Path) -> bool:
    """Stop ``spec`` gracefully; True if it was running."""
    return stop(run_dir / f"{spec.name}.pid", timeout=40)
