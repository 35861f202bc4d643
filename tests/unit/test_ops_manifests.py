"""The Kubernetes manifests in ops/k8s, checked offline (no cluster, no network).

Built-in kinds are validated strictly against the Kubernetes API schemas that the
``kubernetes-validate`` package ships. KEDA's custom resources cannot be validated that way, so
their structure is checked by hand, together with what ties the files to each other and to
routeq: every worker consumes the queue its ScaledObject watches, every queue has a consumer,
every Service finds its pods, every Secret reference names a key the example Secret defines, the
mounted routeq.toml loads, and the workers' shutdown grace covers the time limits it derives.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from routeq.config import load_settings
from routeq.queue.app import MAINTENANCE_QUEUE, ROUTE_QUEUE, queue_names
from routeq.sim import default_sim_config

OPS = Path(__file__).resolve().parents[2] / "ops" / "k8s"
RUNBOOK = OPS.parent / "RUNBOOK.md"
SECRET_NAME = "routeq-secrets"
EXAMPLE_SECRET = "secret.example.yaml"
NAMESPACE = "routeq"
ROUTEQ_IMAGE = "routeq"
BEAT_SCHEDULE_VAR = "ROUTEQ_BEAT_SCHEDULE"
# The oldest Kubernetes minor the manifests promise to work on, and the newest the package knows.
K8S_VERSIONS = sorted({"1.30.0", latest_version()}, key=lambda v: tuple(map(int, v.split("."))))
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
POD_OWNERS = {"Deployment", "StatefulSet", "Job"}
# Components that run routeq but never read its config, database or broker.
NO_CONFIG_COMPONENTS = {"sim"}

Doc = dict[str, Any]


# -- loading ---------------------------------------------------------------------------------------


def _load(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _manifest_files() -> list[Path]:
    return sorted(p for p in OPS.glob("*.yaml") if p.name != "kustomization.yaml")


DOCS: list[tuple[str, Doc]] = [(p.name, d) for p in _manifest_files() for d in _load(p)]
APPLIED: list[Doc] = [d for name, d in DOCS if name != EXAMPLE_SECRET]


def _of_kind(kind: str) -> list[Doc]:
    return [d for d in APPLIED if d["kind"] == kind]


def _by_name(kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in _of_kind(kind)}


def _pod_spec(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]


def _containers(doc: Doc) -> list[Doc]:
    spec = _pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _component(doc: Doc) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def _is_routeq(container: Doc) -> bool:
    return container["image"].split(":")[0].rsplit("/", 1)[-1] == ROUTEQ_IMAGE


def _worker_deployments() -> dict[str, Doc]:
    return {
        name: d
        for name, d in _by_name("Deployment").items()
        if any(_is_routeq(c) and c.get("args", [None])[0] == "worker" for c in _containers(d))
    }


def _worker_container(deployment: Doc) -> Doc:
    (container,) = [c for c in _containers(deployment) if c.get("args", [None])[0] == "worker"]
    return container


def _beat_deployments() -> dict[str, Doc]:
    return {
        name: d
        for name, d in _by_name("Deployment").items()
        if any(_is_routeq(c) and c.get("args", [None])[:1] == ["beat"] for c in _containers(d))
    }


def _option_values(args: list[str], *names: str) -> list[str]:
    """Values of a repeatable CLI option given as ``--opt value`` or ``--opt=value``."""
    values = []
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                values.append(args[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
    return values


def _consumed_queues(args: list[str]) -> set[str]:
    """The queues ``routeq worker`` consumes, as its CLI computes them (-Q NAME, --tier NAME)."""
    queues = set(_option_values(args, "-Q", "--queue"))
    queues |= {f"tier.{tier}" for tier in _option_values(args, "--tier")}
    return queues


def _example_secret() -> Doc:
    (secret,) = _load(OPS / EXAMPLE_SECRET)
    return secret


def _routeq_toml() -> str:
    return _by_name("ConfigMap")["routeq-config"]["data"]["routeq.toml"]


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    """The ConfigMap's routeq.toml as routeq loads it (after conftest clears ROUTEQ_* vars)."""
    path = tmp_path / "routeq.toml"
    path.write_text(_routeq_toml(), encoding="utf-8")
    return load_settings(path)


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _cpu(quantity: str | int | float) -> Decimal:
    match = _CPU.match(str(quantity))
    assert match, f"unparseable cpu quantity {quantity!r}"
    value = Decimal(match.group(1))
    return value / 1000 if match.group(2) else value


def _memory(quantity: str | int) -> int:
    match = _MEMORY.match(str(quantity))
    assert match, f"unparseable memory quantity {quantity!r}"
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2)]


# -- schema validation -----------------------------------------------------------------------------


def test_manifests_exist_and_every_document_is_named() -> None:
    assert DOCS, f"no manifests under {OPS}"
    for file, doc in DOCS:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{file}: {doc}"
        assert doc["metadata"].get("name"), f"{file}: a {doc['kind']} without a name"
    names = Counter((d["kind"], d["metadata"]["name"]) for _, d in DOCS)
    assert not [k for k, n in names.items() if n > 1], "duplicate objects"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_kinds_validate_strictly(version: str) -> None:
    failures = []
    validated = 0
    for file, doc in DOCS:
        if doc["kind"] in KEDA_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            validated += 1
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            where = f"{file} {doc['kind']}/{doc['metadata']['name']}"
            failures.append(f"{where}: {getattr(e, 'message', e)}")
    assert not failures, "\n".join(failures)
    assert validated >= 15


def test_strict_validation_would_catch_a_misspelt_field() -> None:
    """Guards the test above: strict mode must reject what the API server would silently drop."""
    container = {"name": "c", "image": "routeq:latest", "resources": {"limits": {"cpu": "1"}}}
    labels = {"app": "x"}
    deployment: Doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    container["resource"] = container.pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_only_known_custom_resources() -> None:
    for _, doc in DOCS:
        if "/" in doc["apiVersion"] and doc["apiVersion"].split("/")[0].endswith("keda.sh"):
            assert doc["apiVersion"] == "keda.sh/v1alpha1", doc["metadata"]["name"]
            assert doc["kind"] in KEDA_KINDS, doc["kind"]
    assert {d["kind"] for _, d in DOCS if d["kind"] in KEDA_KINDS} == KEDA_KINDS
    assert all(name == "keda.yaml" for name, d in DOCS if d["kind"] in KEDA_KINDS), (
        "KEDA objects belong in keda.yaml"
    )


# -- kustomization and secrets ---------------------------------------------------------------------


def test_kustomization_lists_exactly_the_non_example_files() -> None:
    (kustomization,) = _load(OPS / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    expected = {p.name for p in _manifest_files() if ".example." not in p.name}
    assert set(resources) == expected
    assert EXAMPLE_SECRET not in resources
    assert _by_name("Namespace").keys() == {NAMESPACE}
    for _, doc in DOCS:
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_no_secret_is_applied_and_the_example_holds_only_placeholders() -> None:
    assert not _of_kind("Secret"), "Secrets must be created out of band, not by kustomize"
    secret = _example_secret()
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    assert "data" not in secret, "base64 data hides what the values are; use stringData"
    not_secret = {"REDIS_ADDRESS"}
    for key, value in secret["stringData"].items():
        if key not in not_secret:
            assert "CHANGE-ME" in value, f"{key} looks like a real value: keep placeholders"
    text = (OPS / EXAMPLE_SECRET).read_text(encoding="utf-8")
    assert "NOT applied" in text and "never commit real values" in text
    for key_like in (r"\bsk-[A-Za-z0-9_-]{16,}", r"\bAKIA[0-9A-Z]{16}\b"):
        assert not re.search(key_like, text), f"something like an API key matches {key_like}"


def test_example_secret_is_consistent_with_itself_and_keda() -> None:
    values = _example_secret()["stringData"]
    database = urlsplit(values["ROUTEQ_DATABASE_URL"])
    broker = urlsplit(values["ROUTEQ_BROKER_URL"])
    assert database.scheme == "postgresql+psycopg", "routeq ships psycopg 3, not psycopg2"
    assert database.password == values["POSTGRES_PASSWORD"]
    assert (database.hostname, database.port) == ("routeq-postgres", 5432)
    assert broker.scheme == "redis" and broker.password == values["REDIS_PASSWORD"]
    assert (broker.hostname, broker.port) == ("routeq-redis", 6379)
    # KEDA runs in its own namespace: a short Service name would not resolve there.
    assert values["REDIS_ADDRESS"] == f"routeq-redis.{NAMESPACE}.svc.cluster.local:6379"
    broker_db = broker.path.lstrip("/") or "0"
    for scaled in _of_kind("ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["metadata"].get("databaseIndex", "0") == broker_db


def test_every_secret_reference_names_a_key_the_example_defines() -> None:
    example = _example_secret()
    defined = set(example["stringData"])
    commented = set(re.findall(r"^\s*#\s*([A-Z_]+):", (OPS / EXAMPLE_SECRET).read_text(), re.M))
    refs = 0
    for doc in APPLIED:
        if doc["kind"] not in POD_OWNERS:
            continue
        for container in _containers(doc):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                refs += 1
                assert ref["name"] == SECRET_NAME, var
                if ref.get("optional"):
                    assert ref["key"] in defined | commented, var
                else:
                    assert ref["key"] in defined, f"{doc['metadata']['name']}: {var}"
    assert refs > 20
    for auth in _of_kind("TriggerAuthentication"):
        for target in auth["spec"]["secretTargetRef"]:
            assert target["name"] == SECRET_NAME and target["key"] in defined, target


# -- containers ------------------------------------------------------------------------------------


def test_every_container_has_requests_and_limits() -> None:
    checked = 0
    for doc in APPLIED:
        if doc["kind"] not in POD_OWNERS:
            continue
        for container in _containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            assert {"cpu", "memory"} <= requests.keys(), f"{where}: requests {requests}"
            assert {"cpu", "memory"} <= limits.keys(), f"{where}: limits {limits}"
            assert _cpu(requests["cpu"]) <= _cpu(limits["cpu"]), where
            assert _memory(requests["memory"]) <= _memory(limits["memory"]), where
            checked += 1
    assert checked >= 12  # 5 workers, beat, flower, metrics, sim, migrate, postgres, redis


def test_pods_run_as_non_root_without_privilege_escalation() -> None:
    for doc in APPLIED:
        if doc["kind"] not in POD_OWNERS:
            continue
        pod = _pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod.get("automountServiceAccountToken") is False
        for container in _containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            if _is_routeq(container):
                assert pod["securityContext"]["runAsUser"] == 10001, where  # the image's user
                assert context["readOnlyRootFilesystem"] is True, where
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{where}: read-only root needs a writable /tmp"


def test_routeq_containers_get_config_and_connection_urls() -> None:
    for doc in APPLIED:
        if doc["kind"] not in POD_OWNERS:
            continue
        volumes = {v["name"]: v for v in _pod_spec(doc).get("volumes", [])}
        for container in filter(_is_routeq, _containers(doc)):
            env = {v["name"]: v for v in container.get("env", [])}
            if _component(doc) in NO_CONFIG_COMPONENTS:
                assert not env, f"{doc['metadata']['name']} needs no config or secrets"
                continue
            assert env["ROUTEQ_CONFIG"]["value"] == "/etc/routeq/routeq.toml"
            for name in ("ROUTEQ_DATABASE_URL", "ROUTEQ_BROKER_URL"):
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": SECRET_NAME, "key": name}, ref
            mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/routeq")
            assert mount.get("readOnly") is True
            assert volumes[mount["name"]]["configMap"]["name"] == "routeq-config"


def test_workers_get_provider_keys_as_optional_secret_references() -> None:
    for name, deployment in _worker_deployments().items():
        env = {v["name"]: v for v in _worker_container(deployment)["env"]}
        for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            ref = env[key]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": SECRET_NAME, "key": key, "optional": True}, (name, ref)
            assert "value" not in env[key], f"{name}: a literal API key"


def test_http_services_have_probes_on_their_endpoints() -> None:
    expected = {"routeq-sim": ("httpGet", "/health")}
    deployments = _by_name("Deployment")
    (flower,) = _containers(deployments["routeq-flower"])
    # Flower's /healthcheck needs credentials: the probe command reads them from the environment
    probe = [
        "python",
        "-m",
        "routeq.flower_auth",
        "healthcheck",
        "http://127.0.0.1:5555/healthcheck",
    ]
    assert flower["readinessProbe"]["exec"]["command"] == probe
    assert flower["livenessProbe"]["exec"]["command"] == probe
    (metrics,) = _containers(deployments["routeq-metrics"])
    # a port check: a scrape aggregates the whole ledger, too heavy for a probe
    assert "tcpSocket" in metrics["readinessProbe"] and "tcpSocket" in metrics["livenessProbe"]
    for name, (kind, path) in expected.items():
        (container,) = _containers(deployments[name])
        ready, live = container["readinessProbe"], container["livenessProbe"]
        assert ready[kind]["path"] == path, name
        assert kind in live or "tcpSocket" in live, name
        if kind in live:
            assert live[kind]["path"] == path, name
    for doc in _of_kind("StatefulSet"):
        for container in _containers(doc):
            assert "readinessProbe" in container and "livenessProbe" in container


def test_flower_reads_basic_auth_from_the_secret() -> None:
    (container,) = _containers(_by_name("Deployment")["routeq-flower"])
    env = {v["name"]: v for v in container["env"]}
    ref = env["ROUTEQ_FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": SECRET_NAME, "key": "ROUTEQ_FLOWER_BASIC_AUTH"}
    assert container["args"][:1] == ["flower"]
    assert _option_values(container["args"], "--port") == ["5555"]


def test_workers_shut_down_warm_and_ping_their_own_node(settings: Any) -> None:
    workers = _worker_deployments()
    assert len(workers) == 5
    for name, deployment in workers.items():
        pod = _pod_spec(deployment)
        container = _worker_container(deployment)
        grace = pod["terminationGracePeriodSeconds"]
        # Warm shutdown lets a running delivery finish; none outlives the hard time limit.
        assert grace >= settings.time_limits.hard_s, f"{name}: warm shutdown cut short"
        (node,) = _option_values(container["args"], "--name", "-n")
        prefix, host = node.split("@")
        assert host == "%h", f"{name}: node name must follow the pod's hostname"
        command = container["livenessProbe"]["exec"]["command"]
        assert command[:2] == ["sh", "-c"], command
        assert re.search(rf"inspect ping -d {re.escape(prefix)}@\$HOSTNAME\b", command[2]), name
        assert "-A routeq.worker.main" in command[2]
        probe = container["livenessProbe"]
        ping_timeout = re.search(r"--timeout (\d+)", command[2])
        assert ping_timeout, f"{name}: the ping needs its own timeout"
        assert probe["timeoutSeconds"] > int(ping_timeout.group(1)), f"{name}: probe < ping"
        assert probe["periodSeconds"] >= 60, f"{name}: each probe starts a Python process"
        assert "replicas" not in deployment["spec"], f"{name}: KEDA owns the replica count"


# -- beat ------------------------------------------------------------------------------------------


def test_exactly_one_beat_replaced_with_recreate() -> None:
    beats = _beat_deployments()
    assert list(beats) == ["routeq-beat"], beats.keys()
    (beat,) = beats.values()
    spec = beat["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "a rolling update runs two beats at once"
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in _of_kind("ScaledObject")}
    assert "routeq-beat" not in scaled, "beat is not autoscaled"
    (container,) = _containers(beat)
    assert container["args"] == ["beat"]


def test_beat_writes_its_schedule_to_an_empty_dir() -> None:
    (beat,) = _beat_deployments().values()
    (container,) = _containers(beat)
    env = {v["name"]: v for v in container["env"]}
    schedule = Path(env[BEAT_SCHEDULE_VAR]["value"])
    volumes = {v["name"]: v for v in _pod_spec(beat)["volumes"]}
    mounts = {
        m["mountPath"]: m["name"]
        for m in container["volumeMounts"]
        if Path(m["mountPath"]) in schedule.parents
    }
    assert len(mounts) == 1, f"{schedule} must live in exactly one mounted volume: {mounts}"
    ((path, volume),) = mounts.items()
    assert "emptyDir" in volumes[volume], f"{path}: the root filesystem is read-only"
    assert not any(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"] == path)


def _run_beat_probe(schedule: Path) -> int:
    (beat,) = _beat_deployments().values()
    (container,) = _containers(beat)
    command = container["livenessProbe"]["exec"]["command"]
    assert command[0] == "python", "the image has python on PATH, not this venv's path"
    env = {**os.environ, BEAT_SCHEDULE_VAR: str(schedule)}
    return subprocess.run([sys.executable, *command[1:]], env=env, timeout=30).returncode


def test_beat_liveness_probe_fails_on_a_missing_or_stale_schedule(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat"
    assert _run_beat_probe(schedule) != 0, "no schedule file: beat never started its loop"
    data = tmp_path / "celerybeat.dat"  # dbm.dumb's files; gdbm writes celerybeat itself
    data.write_bytes(b"")
    assert _run_beat_probe(schedule) == 0
    stale = time.time() - 600
    os.utime(data, (stale, stale))
    assert _run_beat_probe(schedule) != 0, "a schedule untouched for 10 minutes: beat is stuck"


# -- services --------------------------------------------------------------------------------------


def test_services_select_pods_and_named_ports() -> None:
    owners = [d for d in APPLIED if d["kind"] in POD_OWNERS - {"Job"}]
    for service in _of_kind("Service"):
        selector = service["spec"]["selector"]
        matches = [
            d
            for d in owners
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"{service['metadata']['name']} selects {len(matches)} owners"
        ports = {p["name"] for c in _containers(matches[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)
    for owner in owners:
        selector = owner["spec"]["selector"]["matchLabels"]
        assert selector.items() <= owner["spec"]["template"]["metadata"]["labels"].items()
    for stateful in _of_kind("StatefulSet"):
        service = _by_name("Service")[stateful["spec"]["serviceName"]]
        assert service["spec"].get("clusterIP") == "None", "a StatefulSet needs headless DNS"


def test_service_ports_and_prometheus_annotations() -> None:
    services = _by_name("Service")
    ports = {name: [p["port"] for p in s["spec"]["ports"]] for name, s in services.items()}
    assert ports["routeq-flower"] == [5555]
    assert ports["routeq-metrics"] == [9464]
    assert ports["routeq-sim"] == [8765]
    assert ports["routeq-postgres"] == [5432]
    assert ports["routeq-redis"] == [6379]
    annotations = services["routeq-metrics"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9464",
        "prometheus.io/path": "/metrics",
    }


def test_postgres_and_redis_are_persistent_and_password_protected() -> None:
    stateful = _by_name("StatefulSet")
    for name in ("routeq-postgres", "routeq-redis"):
        claims = stateful[name]["spec"]["volumeClaimTemplates"]
        (mount_names,) = [
            {m["name"] for m in c["volumeMounts"]} for c in _containers(stateful[name])
        ]
        assert {c["metadata"]["name"] for c in claims} <= mount_names, name
    (postgres,) = _containers(stateful["routeq-postgres"])
    assert postgres["image"] == "postgres:16"
    env = {v["name"]: v for v in postgres["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "POSTGRES_PASSWORD"
    (redis,) = _containers(stateful["routeq-redis"])
    assert redis["image"] == "redis:7"
    argv = redis["command"] + redis.get("args", [])
    assert _option_values(argv, "--appendonly") == ["yes"]
    assert _option_values(argv, "--maxmemory-policy") == ["noeviction"]
    assert _option_values(argv, "--requirepass") == ["$(REDIS_PASSWORD)"]
    env = {v["name"]: v for v in redis["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "REDIS_PASSWORD"


def test_migrate_job_runs_the_alembic_upgrade() -> None:
    (job,) = _of_kind("Job")
    (container,) = _containers(job)
    assert container["args"][:2] == ["db", "upgrade"] and "--wait" in container["args"]
    assert _pod_spec(job)["restartPolicy"] in {"Never", "OnFailure"}
    assert job["spec"]["backoffLimit"] >= 3, "first installs wait for Postgres by retrying"


# -- autoscaling -----------------------------------------------------------------------------------


def test_every_worker_has_a_scaled_object_on_the_queue_it_consumes(settings: Any) -> None:
    known = set(queue_names(settings))
    assert known == {"route", "judge", "maintenance", "tier.cheap", "tier.mid", "tier.frontier"}
    deployments = _by_name("Deployment")
    workers = _worker_deployments()
    watched: dict[str, str] = {}
    for scaled in _of_kind("ScaledObject"):
        name = scaled["metadata"]["name"]
        target = scaled["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment", name
        assert target.get("apiVersion", "apps/v1") == "apps/v1", name
        assert target["name"] in deployments, f"{name} scales a missing Deployment"
        assert target["name"] not in watched, f"two ScaledObjects scale {target['name']}"
        redis_triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis"]
        assert len(redis_triggers) == 1, name
        list_name = redis_triggers[0]["metadata"]["listName"]
        assert list_name in known, f"{name} watches {list_name!r}, not a routeq queue"
        watched[target["name"]] = list_name
    assert watched.keys() == workers.keys(), "every worker Deployment needs a ScaledObject"
    consumers: Counter[str] = Counter()
    for name, list_name in watched.items():
        consumed = _consumed_queues(_worker_container(workers[name])["args"])
        consumers.update(consumed)
        # The maintenance queue rides along with the route workers; every other queue has
        # Deployment of its own, scaled on its own backlog.
        extra = {MAINTENANCE_QUEUE} if list_name == ROUTE_QUEUE else set()
        assert consumed == {list_name} | extra, f"{name} consumes {consumed}, KEDA watches"
    assert set(consumers) == known, f"queues without workers: {known - set(consumers)}"
    assert all(n == 1 for n in consumers.values()), f"a queue with two Deployments: {consumers}"


def test_scaled_object_bounds_and_authentication(settings: Any) -> None:
    auths = _by_name("TriggerAuthentication")
    top_tier = settings.tiers[-1].queue
    for scaled in _of_kind("ScaledObject"):
        spec = scaled["spec"]
        name = scaled["metadata"]["name"]
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert int(meta["listLength"]) > 0 and isinstance(meta["listLength"], str), name
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= 50, name
        if meta["listName"] == top_tier:
            assert spec["minReplicaCount"] in (0, 1)
        else:
            assert spec["minReplicaCount"] >= 1, f"{name}: only the top tier may scale to zero"
        if meta["listName"] == ROUTE_QUEUE:
            # The route workers run the reconciler (queue maintenance); KEDA only sees `route`,
            # which is empty exactly when the system is idle: at zero nothing would reconcile.
            assert spec["minReplicaCount"] >= 1 and spec["fallback"]["replicas"] >= 1, name
        assert spec["fallback"]["replicas"] >= 1
        assert trigger["authenticationRef"]["name"] in auths, name
        for key in ("address", "addressFromEnv", "host", "password", "passwordFromEnv"):
            assert key not in meta, f"{name}: connection details belong in the Secret"
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60, name
    for auth in auths.values():
        parameters = {t["parameter"] for t in auth["spec"]["secretTargetRef"]}
        assert parameters == {"address", "password"}


# -- configuration ---------------------------------------------------------------------------------


def test_configmap_routeq_toml_loads_and_uses_the_sim_service(settings: Any) -> None:
    assert settings.tier_names == ["cheap", "mid", "frontier"]
    assert [t.model for t in settings.tiers] == ["sim-small", "sim-medium", "sim-large"]
    assert settings.judge.model is not None and settings.judge.model.model == "sim-judge"
    sim_models = set(default_sim_config(0).models)
    service = _by_name("Service")["routeq-sim"]
    port = service["spec"]["ports"][0]["port"]
    expected_url = f"http://{service['metadata']['name']}:{port}/v1"
    for endpoint in [*settings.tiers, settings.judge.model]:
        assert endpoint.provider == "openai"
        assert endpoint.base_url == expected_url
        assert endpoint.model in sim_models
        assert endpoint.api_key_env is None, "the simulated server needs no key"
    assert settings.database_url is None and settings.broker_url is None, "URLs are secrets"


def test_configmap_derives_the_time_limits_and_the_grace_covers_them(settings: Any) -> None:
    worker = settings.worker
    explicit = (worker.task_soft_time_limit_s, worker.task_time_limit_s)
    assert explicit == (None, None), "leave the limits unset: routeq derives them from the tiers"
    assert worker.visibility_timeout_s is None
    limits = settings.time_limits
    # timeout_s 10 for every endpoint, the default retry policy: 4 x 10 + 3 x 60 + 30 lease.
    assert (limits.soft_s, limits.hard_s, limits.visibility_s) == (255, 285, 390)
    graces = {
        name: _pod_spec(d)["terminationGracePeriodSeconds"]
        for name, d in _worker_deployments().items()
    }
    assert min(graces.values()) >= limits.hard_s, graces
    text = (OPS / "configmap.yaml").read_text(encoding="utf-8")
    assert f"hard {limits.hard_s} s" in text, "configmap.yaml's comment states the hard limit"
    assert not re.search(r"\b(600|660|3600)\b", text), "stale limits in configmap.yaml"


def test_tier_workers_take_concurrency_from_the_config(settings: Any) -> None:
    workers = _worker_deployments()
    for tier in settings.tiers:
        args = _worker_container(workers[f"routeq-worker-{tier.name}"])["args"]
        assert _option_values(args, "--tier") == [tier.name]
        assert not _option_values(args, "-c", "--concurrency"), "max_concurrency decides"
    for name, concurrency in (("route", "2"), ("judge", "4")):
        args = _worker_container(workers[f"routeq-worker-{name}"])["args"]
        assert _option_values(args, "-c", "--concurrency") == [concurrency]


def test_runbook_covers_the_operator_tasks() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    for needle in (
        "kubectl apply -k ops/k8s",
        "routeq check",
        "cancel_consumer tier.cheap",
        "rollout restart",
        "SELECT query_id, seq, kind, tier, status, created_at FROM hops",
        "routeq status",
        "routeq batch status",
        "provider_requests",
        "reconciler",
        "routeq reconcile",
        "reconcile_interval_s",
        "reconcile_grace_s",
        "reconciler_stats",
        "'unknown'",
        "max_cost",
        "routeq-beat",
    ):
        assert needle in text, needle
    assert "There is no automatic reconciler" not in text
    assert not re.search(r"run `?routeq recover`? by hand", text), "the reconciler does it"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not found")
def test_kustomize_build_puts_everything_in_the_namespace() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(OPS)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d is not None]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        (d["kind"], d["metadata"]["name"]) for d in APPLIED
    }
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
