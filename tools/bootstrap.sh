#!/usr/bin/env bash
# Installs what the project needs and is missing; reuses what is there. Safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  echo "installing uv (Python package and environment manager) from PyPI"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
UV=$(command -v uv 2>/dev/null || echo "$HOME/.local/bin/uv")

# The workspace's environment, exactly as locked.
"$UV" sync --all-packages --frozen --quiet

# Kafka's jars (Maven Central, cached under ~/.cache/policyloop), PostgreSQL's binaries and, for the browser
# tests, Chromium (both apt-get).
"$UV" run --frozen python - <<'PY'
from tools.browser import chromium_executable
from tools.local_stack.kafka import kafka_classpath
from tools.local_stack.postgres import postgres_bin
kafka_classpath()
postgres_bin()
chromium_executable()
PY
