"""Autoscaling that can work: targets that exist, one autoscaler per workload, consumer replicas within partitions.

A consumer group cannot keep more members busy than its topic has partitions, so a ScaledObject that may go above
that count only adds idle pods; KEDA's default maximum (100) is above any partition count we use.
"""

from __future__ import annotations

from tools.k8s_check.inventory import Inventory, container_environment, name_of, namespace_of
from tools.k8s_check.object_names import describe

# KEDA's default when maxReplicaCount is not set.
KEDA_DEFAULT_MAX_REPLICAS = 100


def scaling_problems(inventory: Inventory) -> list[str]:
    """Problems of the HorizontalPodAutoscalers and the KEDA ScaledObjects."""
    problems = []
    partitions = _partitions_by_topic(inventory)
    scaled_targets: dict[tuple[str | None, str], str] = {}
    for scaled_object in inventory.of_kind("ScaledObject"):
        problems += _scaled_object_problems(scaled_object, inventory, partitions)
        target = ((scaled_object.get("spec") or {}).get("scaleTargetRef") or {}).get("name", "")
        scaled_targets[(namespace_of(scaled_object), target)] = describe(scaled_object)
    for autoscaler in inventory.of_kind("HorizontalPodAutoscaler"):
        target = ((autoscaler.get("spec") or {}).get("scaleTargetRef") or {})
        if inventory.find(target.get("kind", ""), namespace_of(autoscaler), target.get("name", "")) is None:
            problems.append(f"{describe(autoscaler)}: scales {target.get('kind')} {target.get('name')}, "
                            "which is not in the render")
        other = scaled_targets.get((namespace_of(autoscaler), target.get("name", "")))
        if other:
            problems.append(f"{describe(autoscaler)} and {other} both scale {target.get('name')}: "
                            "two autoscalers would fight over its replica count")
    return problems


def _partitions_by_topic(inventory: Inventory) -> dict[str, int | None]:
    """Partitions of each KafkaTopic by topic name; None where the count is missing or not a number."""
    topics: dict[str, int | None] = {}
    for topic in inventory.of_kind("KafkaTopic"):
        spec = topic.get("spec") or {}
        count = spec.get("partitions")
        topics[spec.get("topicName") or name_of(topic)] = count if isinstance(count, int) else None
    return topics


def _scaled_object_problems(scaled_object: dict, inventory: Inventory,
                            partitions: dict[str, int | None]) -> list[str]:
    spec = scaled_object.get("spec") or {}
    where = describe(scaled_object)
    reference = spec.get("scaleTargetRef") or {}
    target = inventory.find(reference.get("kind", "Deployment"), namespace_of(scaled_object), reference.get("name", ""))
    problems = []
    if target is None:
        problems.append(f"{where}: scales {reference.get('kind', 'Deployment')} {reference.get('name')}, "
                        "which is not in the render")
    maximum = spec.get("maxReplicaCount", KEDA_DEFAULT_MAX_REPLICAS)
    minimum = spec.get("minReplicaCount", 0)
    if isinstance(maximum, int) and isinstance(minimum, int) and minimum > maximum:
        problems.append(f"{where}: minReplicaCount {minimum} is above maxReplicaCount {maximum}")
    environment = container_environment(target, inventory, reference.get("envSourceContainerName")) if target else {}
    for index, trigger in enumerate(spec.get("triggers") or []):
        if trigger.get("type") != "kafka":
            continue
        trigger_name = f"{where}: kafka trigger {trigger.get('name') or index}"
        metadata = trigger.get("metadata") or {}
        topic = _setting(metadata, "topic", environment)
        group = _setting(metadata, "consumerGroup", environment)
        if not topic:
            problems.append(f"{trigger_name} names no topic: KEDA would count the lag of every topic of the "
                            "group, and the replica bound cannot be checked")
            continue
        if topic not in partitions:
            problems.append(f"{trigger_name} watches topic {topic}, which has no KafkaTopic in the render")
        elif partitions[topic] is None:
            problems.append(f"{trigger_name} watches topic {topic}, whose KafkaTopic has no integer "
                            "spec.partitions: the replica bound cannot be checked")
        elif isinstance(maximum, int) and maximum > partitions[topic]:
            problems.append(f"{where}: maxReplicaCount {maximum} exceeds the {partitions[topic]} partitions of "
                            f"topic {topic} (consumer group {group}): replicas beyond the partition count sit idle")
        if target is not None:
            values = set(environment.values())
            if group and group not in values:
                problems.append(f"{trigger_name} counts the lag of consumer group {group!r}, but no environment "
                                f"variable of {describe(target)} has that value: it scales on another group's lag")
            if topic not in values:
                problems.append(f"{trigger_name} watches topic {topic!r}, but no environment variable of "
                                f"{describe(target)} has that value: the workload does not consume it")
    return problems


def _setting(metadata: dict, key: str, environment: dict[str, str]) -> str | None:
    """A trigger setting given literally or, with the ``FromEnv`` suffix, through the target's environment."""
    if metadata.get(key):
        return str(metadata[key])
    variable = metadata.get(f"{key}FromEnv")
    return environment.get(variable) if variable else None
