"""A single-node Apache Kafka 4.x broker in KRaft mode, its jars resolved from Maven Central and cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tools.local_stack.processes import read_pid, spawn, stop, wait_until

KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.24.3"
CACHE_ROOT = Path(os.environ.get("POLICYLOOP_CACHE", Path.home() / ".cache" / "policyloop"))

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>policyloop.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <!-- Kafka's runtime uses SLF4J 1.x and brings no logging backend of its own. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def kafka_classpath() -> Path:
    """The directory of Kafka's jars, resolved with Maven the first time and reused afterwards."""
    libs = CACHE_ROOT / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("Java 17+ and Maven are needed to fetch Apache Kafka (apt-get install openjdk-17-jre maven)")
    print(f"resolving Apache Kafka {KAFKA_VERSION} from Maven Central into {libs} (first run only)", flush=True)
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
        staging = Path(work) / "libs"
        subprocess.run(["mvn", "-B", "-q", "-f", str(pom),
                        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
                        "-DincludeScope=runtime", f"-DoutputDirectory={staging}"], check=True)
        if libs.exists():
            shutil.rmtree(libs)
        libs.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), libs)
    marker.write_text(KAFKA_VERSION)
    return libs


@dataclass
class KafkaBroker:
    """One combined broker+controller node with its data, logs and pid file under ``home``."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1G"
    pid_file: Path | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Where the broker's stdout goes."""
        return self.home / "kafka.out"

    def _pid_file(self) -> Path:
        return self.pid_file or self.home / "kafka.pid"

    def running(self) -> bool:
        """True while the broker process is alive."""
        return read_pid(self._pid_file()) is not None

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request."""
        try:
            # log_level 0: "connection refused" while the broker starts is expected, not worth a line.
            AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0}).list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def start(self, timeout: float = 90.0) -> None:
        """Format the storage on first use, start the broker and wait until it answers."""
        if self.running():
            return
        libs = kafka_classpath()
        data, logs = self.home / "data", self.home / "logs"
        data.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        config = self._write_config(data)
        log4j = self.home / "log4j2.properties"
        log4j.write_text(_LOG4J)
        classpath = f"{libs}/*"
        if not (data / "meta.properties").exists():
            cluster_id = subprocess.run(["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                                        check=True, capture_output=True, text=True).stdout.strip()
            subprocess.run(["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                            "-c", str(config), "--standalone", "--ignore-formatted"],
                           check=True, capture_output=True, text=True)
        command = ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                   f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={logs}",
                   "-cp", classpath, "kafka.Kafka", str(config)]
        spawn(command, pid_file=self._pid_file(), log_file=self.log_file)
        wait_until(self.reachable, timeout=timeout, what="Kafka", alive=self.running,
                   log_file=logs / "server.log")

    def stop(self) -> bool:
        """Stop the broker (controlled shutdown on SIGTERM)."""
        return stop(self._pid_file(), timeout=60)

    def _write_config(self, data: Path) -> Path:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            # A single node can only replicate once; without these, groups and transactions never start.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.partitions": "6",
        }
        config = self.home / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return config
