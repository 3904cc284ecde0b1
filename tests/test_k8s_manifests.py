"""The Kubernetes manifests render and validate, and the checker catches the mistakes it exists to catch.

Each breakage is made in a copy of deploy/k8s, the way a person would make it: in the YAML of the base or of an
overlay. kustomize is installed into the cache on first use; when it cannot be, these tests fail, never skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from tools.k8s_check import check_tree, go_toolchain
from tools.k8s_check.alert_rules import alert_names, missing_runbook_sections
from tools.k8s_check.cache import cache_root
from tools.k8s_check.crd_schema import strict_schema
from tools.k8s_check.inventory import Inventory
from tools.k8s_check.kustomize import KUSTOMIZE_VERSION, installed_version, kustomize_binary, render
from tools.k8s_check.promql import metric_names, parse_error, without_grafana_variables

REPOSITORY = Path(__file__).resolve().parents[1]
TREE = REPOSITORY / "deploy" / "k8s"
DASHBOARD = REPOSITORY / "deploy" / "grafana" / "policyloop-dashboard.json"
OPERATIONS = REPOSITORY / "docs" / "operations.md"


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A private copy of deploy/k8s to break."""
    return Path(shutil.copytree(TREE, tmp_path / "k8s"))


def edit_yaml(path: Path, change: Callable[[list[dict]], None]) -> None:
    """Load every document of ``path``, apply ``change`` to the list, write it back."""
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
    change(documents)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def replace_text(path: Path, old: str, new: str) -> None:
    """Replace ``old`` once; fails loudly if the manifest no longer contains it."""
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def container(documents: list[dict]) -> dict:
    """The only container of the Deployment in ``documents``."""
    return documents[0]["spec"]["template"]["spec"]["containers"][0]


def test_the_committed_tree_renders_and_validates():
    assert check_tree(TREE) == []


def test_the_command_line_exits_0_on_the_committed_tree_and_1_on_a_broken_one(tree_copy: Path):
    replace_text(tree_copy / "base/app/policy-store/deployment.yaml", "containerPort: 8003", "containerPorts: 8003")
    good = subprocess.run([sys.executable, "-m", "tools.k8s_check", str(TREE)], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=600)
    bad = subprocess.run([sys.executable, "-m", "tools.k8s_check", str(tree_copy)], cwd=REPOSITORY,
                         capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "render and validate" in good.stdout
    assert bad.returncode == 1
    assert "ERROR overlays/prod: Deployment policyloop/policy-store" in bad.stdout
    assert "'containerPorts' was unexpected" in bad.stdout


def test_a_misspelled_deployment_field_fails(tree_copy: Path):
    replace_text(tree_copy / "base/app/feedback-api/deployment.yaml", "containerPort: 8001", "containerPorts: 8001")
    problems = check_tree(tree_copy)
    for overlay in ("dev", "prod"):
        assert (f"overlays/{overlay}: Deployment policyloop/feedback-api: spec.template.spec.containers[0].ports[0]: "
                "Additional properties are not allowed ('containerPorts' was unexpected)") in problems


def test_a_deployment_field_of_the_wrong_type_fails(tree_copy: Path):
    replace_text(tree_copy / "base/app/policy-generator/deployment.yaml", "terminationGracePeriodSeconds: 120",
                 "terminationGracePeriodSeconds: two minutes")
    problems = check_tree(tree_copy)
    assert any("Deployment policyloop/policy-generator: spec.template.spec.terminationGracePeriodSeconds: "
               "'two minutes' is not of type 'integer'" in problem for problem in problems), problems


def test_an_unknown_scaledobject_field_fails(tree_copy: Path):
    # KEDA's own field is pollingInterval; the API server would drop this one silently and poll every 30 s.
    replace_text(tree_copy / "base/app/policy-generator/scaledobject.yaml", "pollingInterval: 15",
                 "pollingIntervalSeconds: 15")
    problems = check_tree(tree_copy)
    assert ("overlays/dev: ScaledObject policyloop/policy-generator: spec: Additional properties are not allowed "
            "('pollingIntervalSeconds' was unexpected)") in problems


def test_an_unknown_field_in_a_kafka_trigger_fails(tree_copy: Path):
    def misplace_lag_threshold(documents: list[dict]) -> None:
        trigger = documents[0]["spec"]["triggers"][0]
        trigger["lagThreshold"] = trigger["metadata"].pop("lagThreshold")

    edit_yaml(tree_copy / "base/app/policy-generator/scaledobject.yaml", misplace_lag_threshold)
    problems = check_tree(tree_copy)
    assert any("ScaledObject policyloop/policy-generator: spec.triggers[0]: Additional properties are not allowed "
               "('lagThreshold' was unexpected)" in problem for problem in problems), problems


def test_a_deployment_without_a_readiness_probe_fails(tree_copy: Path):
    edit_yaml(tree_copy / "base/app/policy-store/deployment.yaml",
              lambda documents: container(documents).pop("readinessProbe"))
    problems = check_tree(tree_copy)
    assert ("overlays/prod: Deployment policyloop/policy-store: container policy-store has no readinessProbe: it "
            "would get traffic and count as available before it can serve") in problems


def test_a_container_that_may_run_as_root_or_write_its_image_fails(tree_copy: Path):
    def loosen(documents: list[dict]) -> None:
        security = container(documents)["securityContext"]
        del security["runAsNonRoot"], security["readOnlyRootFilesystem"]
        del documents[0]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
        del container(documents)["resources"]["limits"]

    edit_yaml(tree_copy / "base/app/feedback-api/deployment.yaml", loosen)
    problems = check_tree(tree_copy)
    where = "overlays/prod: Deployment policyloop/feedback-api: container feedback-api"
    assert f"{where} does not set runAsNonRoot: true" in problems
    assert f"{where} does not set readOnlyRootFilesystem: true" in problems
    assert f"{where} has no resources.limits for cpu and memory: one runaway process could starve its node" in problems
    # The dev overlay sets limits of its own, so there only the security settings are missing.
    assert not any(problem.startswith("overlays/dev") and "resources.limits" in problem for problem in problems)


def test_more_consumer_replicas_than_partitions_fails(tree_copy: Path):
    replace_text(tree_copy / "overlays/prod/replicas.yaml", "  minReplicaCount: 2\n  maxReplicaCount: 12",
                 "  minReplicaCount: 2\n  maxReplicaCount: 16")
    problems = check_tree(tree_copy)
    assert problems == [
        "overlays/prod: ScaledObject policyloop/policy-generator: maxReplicaCount 16 exceeds the 12 partitions of "
        "topic feedback.submitted.v1 (consumer group policy-generator): replicas beyond the partition count sit idle"]


def test_fewer_partitions_than_consumer_replicas_fails(tree_copy: Path):
    replace_text(tree_copy / "base/kafka-topics/policy-decisions.yaml", "partitions: 12", "partitions: 6")
    problems = check_tree(tree_copy)
    assert ("overlays/prod: ScaledObject policyloop/policy-store: maxReplicaCount 12 exceeds the 6 partitions of "
            "topic policy.decisions.v1 (consumer group policy-store): replicas beyond the partition count sit idle"
            ) in problems


def test_a_trigger_on_another_consumer_group_fails(tree_copy: Path):
    replace_text(tree_copy / "base/app/policy-generator/scaledobject.yaml", "consumerGroup: policy-generator",
                 "consumerGroup: policy-generators")
    problems = check_tree(tree_copy)
    assert any("counts the lag of consumer group 'policy-generators', but no environment variable of Deployment "
               "policyloop/policy-generator has that value" in problem for problem in problems), problems


def test_an_alert_without_a_runbook_fails(tree_copy: Path):
    replace_text(tree_copy / "base/app/monitoring/prometheusrule.yaml",
                 "            runbook_url: docs/operations.md#policyloopllmcosthigh\n", "")
    problems = check_tree(tree_copy)
    assert "overlays/dev: PrometheusRule policyloop/policyloop: alert PolicyloopLLMCostHigh has no runbook_url " \
           "annotation" in problems


def test_an_alert_expression_that_is_not_promql_fails(tree_copy: Path):
    replace_text(tree_copy / "base/app/monitoring/prometheusrule.yaml",
                 "expr: sum by (service, topic) (policyloop_consumer_lag) > 1000",
                 "expr: sum by (service, topic (policyloop_consumer_lag) > 1000")
    problems = check_tree(tree_copy)
    assert any("rule PolicyloopConsumerLagHigh: expr is not valid PromQL" in problem for problem in problems)


def test_a_service_that_selects_no_pod_fails(tree_copy: Path):
    def mislabel(documents: list[dict]) -> None:
        documents[0]["spec"]["selector"]["app.kubernetes.io/component"] = "worker"

    edit_yaml(tree_copy / "base/app/policy-store/service.yaml", mislabel)
    problems = check_tree(tree_copy)
    assert any("Service policyloop/policy-store: its selector" in problem and "matches no pod" in problem
               for problem in problems), problems


def test_a_kind_without_a_known_schema_fails(tree_copy: Path):
    (tree_copy / "base/app/monitoring/podmonitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata:\n  name: extra\n"
        "spec:\n  selector: {}\n")
    replace_text(tree_copy / "base/app/monitoring/kustomization.yaml", "  - prometheusrule.yaml",
                 "  - prometheusrule.yaml\n  - podmonitor.yaml")
    problems = check_tree(tree_copy)
    assert ("overlays/dev: PodMonitor policyloop/extra: no schema for monitoring.coreos.com/v1 PodMonitor; add its "
            "CRD to tools/k8s_check/crd_sources.py") in problems


def test_a_kustomization_that_does_not_build_is_reported(tree_copy: Path):
    replace_text(tree_copy / "overlays/dev/kustomization.yaml", "  - path: single-replica.yaml",
                 "  - path: no-such-patch.yaml")
    problems = check_tree(tree_copy)
    assert len(problems) == 1 and problems[0].startswith("overlays/dev: kustomize build failed:"), problems


def test_without_go_and_without_a_cached_kustomize_the_check_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    check_tree(TREE)  # fills the real cache, whose CRDs the empty one gets, so that only kustomize is missing
    shutil.copytree(cache_root() / "crds", tmp_path / "cache" / "crds")
    monkeypatch.setenv("POLICYLOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(go_toolchain, "GO_FALLBACK", tmp_path / "no-go")
    assert check_tree(TREE) == ["kustomize could not be obtained: the Go toolchain is needed to install kustomize and "
                                "fetch CRDs; install Go 1.24 or newer"]


def test_kustomize_is_the_pinned_version():
    assert installed_version(kustomize_binary()) == KUSTOMIZE_VERSION


def test_crd_schemas_are_closed_except_where_kubernetes_keeps_unknown_fields():
    schema = strict_schema({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "empty": {"type": "object"},
        "note": {"type": "string", "nullable": True},
    }}, root=True)
    validator = jsonschema.Draft4Validator(schema)
    accepted = {"port": 8080, "config": {"retention.ms": "-1", "anything": {"goes": 1}}, "labels": {"a": "b"},
                "note": None, "metadata": {"name": "x"}}
    assert list(validator.iter_errors(accepted)) == []
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"prot": 8080})
    assert not validator.is_valid({"empty": {"pruned": True}})
    assert not validator.is_valid({"labels": {"a": 1}})


def exported_metric_names() -> set[str]:
    """Every metric name the services and the shared package declare in their source."""
    names: set[str] = set()
    for source in [*REPOSITORY.glob("packages/*/src/**/*.py"), *REPOSITORY.glob("services/*/src/**/*.py")]:
        names |= set(re.findall(r"[\"'](policyloop_[a-z0-9_]+)[\"']", source.read_text()))
    return names


def series_of(name: str, exported: set[str]) -> str:
    """The declared metric behind a series name: ``x_bucket``, ``x_sum`` and ``x_count`` belong to histogram ``x``."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in exported:
            return name.removesuffix(suffix)
    return name


def test_alerts_use_only_metrics_the_services_export():
    exported = exported_metric_names()
    rules = [rule for document in render(TREE / "overlays" / "prod") if document["kind"] == "PrometheusRule"
             for group in document["spec"]["groups"] for rule in group["rules"]]
    used = {series_of(name, exported) for rule in rules for name in metric_names(rule["expr"])}
    assert used and used <= exported, sorted(used - exported)


def test_the_dashboard_queries_are_promql_over_metrics_the_services_export():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_metric_names()
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 15
    for expression in expressions:
        concrete = without_grafana_variables(expression)
        assert parse_error(concrete) is None, (expression, parse_error(concrete))
        used = {series_of(name, exported) for name in metric_names(concrete)}
        assert used and used <= exported, (expression, sorted(used - exported))


def test_every_alert_has_its_section_in_the_operations_guide():
    alerts = alert_names(Inventory(render(TREE / "overlays" / "prod")))
    missing = missing_runbook_sections(alerts, OPERATIONS)
    assert missing == [], ("docs/operations.md needs a heading per alert, named exactly like it (the runbook_url "
                           f"anchors): {', '.join(missing)}")
