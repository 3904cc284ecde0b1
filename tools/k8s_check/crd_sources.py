"""The CustomResourceDefinitions of the operators the manifests target, fetched from their releases and cached.

- KEDA and the Prometheus Operator are Go modules: ``go mod download`` through the Go module proxy gives their
  source tree, which holds the CRD YAML files they install.
- Strimzi publishes no CRD files to a package registry, but it generates them from the annotated model classes
  of its ``io.strimzi:api`` jar with its ``io.strimzi:crd-generator``, both on Maven Central. Running that generator
  on that jar is how Strimzi's own build produces the KafkaTopic CRD it installs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.k8s_check.cache import cache_root
from tools.k8s_check.errors import ToolUnavailable
from tools.k8s_check.go_toolchain import module_directory

KEDA_MODULE = "github.com/kedacore/keda/v2"
KEDA_VERSION = "v2.21.0"
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
# Maven Central has Strimzi's crd-generator for 0.45.0 and 1.2.0 only; 1.2.0 needs Java 21 and serves only
# kafka.strimzi.io/v1, while 0.45.0 runs on Java 17 and serves kafka.strimzi.io/v1beta2, the version the manifests
# use. (The KafkaTopic spec is the same in both.)
STRIMZI_VERSION = "0.45.0"


@dataclass(frozen=True)
class GoModuleCrd:
    """A CRD file inside a Go module's source tree."""

    module: str
    version: str
    path: str

    def fetch(self, destination: Path) -> None:
        """Copy the file out of the downloaded module."""
        shutil.copyfile(module_directory(self.module, self.version) / self.path, destination)


@dataclass(frozen=True)
class StrimziGeneratedCrd:
    """A Strimzi CRD generated from the ``io.strimzi:api`` model class named ``model_class``."""

    version: str
    model_class: str
    api_versions: str = "v1beta2"

    def fetch(self, destination: Path) -> None:
        """Resolve the api jar and the generator with Maven, then run the generator for one class."""
        for tool in ("mvn", "java"):
            if shutil.which(tool) is None:
                raise ToolUnavailable(f"{tool} is needed to generate Strimzi's CRDs (apt-get install maven "
                                      "openjdk-17-jre-headless)")
        with tempfile.TemporaryDirectory(prefix="policyloop-strimzi-") as work:
            pom = Path(work) / "pom.xml"
            pom.write_text(_STRIMZI_POM.format(version=self.version))
            libs = Path(work) / "libs"
            _run(["mvn", "-B", "-q", "-f", str(pom),
                  "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
                  "-DincludeScope=runtime", f"-DoutputDirectory={libs}"], what="resolving Strimzi's jars")
            generated = Path(work) / "crd.yaml"
            # The arguments of Strimzi's own build (api/pom.xml, execution "generate-crd-co-install-v1").
            _run(["java", "-cp", f"{libs}/*", "io.strimzi.crdgenerator.CrdGenerator",
                  "--label", "app:strimzi", "--label", "strimzi.io/crd-install:true", "--target-kube", "1.16+",
                  "--crd-api-version", "v1", "--api-versions", self.api_versions,
                  "--storage-version", self.api_versions.split(",")[-1], "--yaml",
                  f"{self.model_class}={generated}"], what="generating the Strimzi CRD")
            shutil.copyfile(generated, destination)


_STRIMZI_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>policyloop.local</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>{version}</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId>
      <version>{version}</version></dependency>
  </dependencies>
</project>
"""


def _run(command: list[str], *, what: str) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if completed.returncode != 0:
        raise ToolUnavailable(f"{what} failed ({' '.join(command[:2])} …):\n{completed.stdout}{completed.stderr}")


# Keyed by the cache directory that holds each source's file: the version is part of the name, so a new pin
# fetches anew and never mixes with an old file.
CRD_SOURCES: dict[str, dict[str, GoModuleCrd | StrimziGeneratedCrd]] = {
    f"keda-{KEDA_VERSION}": {
        "keda.sh_scaledobjects.yaml": GoModuleCrd(KEDA_MODULE, KEDA_VERSION,
                                                  "config/crd/bases/keda.sh_scaledobjects.yaml"),
    },
    f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}": {
        name: GoModuleCrd(PROMETHEUS_OPERATOR_MODULE, PROMETHEUS_OPERATOR_VERSION,
                          f"example/prometheus-operator-crd/{name}")
        for name in ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
    },
    f"strimzi-{STRIMZI_VERSION}": {
        "kafka.strimzi.io_kafkatopics.yaml": StrimziGeneratedCrd(STRIMZI_VERSION,
                                                                 "io.strimzi.api.kafka.model.topic.KafkaTopic"),
    },
}


def crd_files() -> list[Path]:
    """The cached CRD files, fetching those not cached yet."""
    files = []
    for directory_name, sources in CRD_SOURCES.items():
        directory = cache_root() / "crds" / directory_name
        for file_name, source in sources.items():
            path = directory / file_name
            if not path.exists():
                print(f"fetching the CRD {file_name} ({directory_name}) into {directory} (first run only)",
                      file=sys.stderr, flush=True)
                directory.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                source.fetch(partial)
                partial.replace(path)
            files.append(path)
    return files


def load_crds() -> list[dict]:
    """Every CustomResourceDefinition in the cached files."""
    definitions = []
    for path in crd_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                definitions.append(document)
    return definitions
