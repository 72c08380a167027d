"""Validate rendered Kubernetes manifests: schemas, then what this platform needs.

    python k8s/validate.py RENDERED.yaml ... [--template k8s/secret.template.yaml]
        [--kubernetes-version 1.30.0 ...]

Every object of every file is checked against the Kubernetes JSON schemas of
each version asked for (package kubernetes-validate, strict: an unknown field
is an error), or, for KEDA's kinds, against the schemas in k8s/schemas/. A
kind with neither is an error, never a silent pass.

A rendered overlay (each positional file) must then also hold what the
platform relies on, read from the code in shared/ and services/ rather than
restated here:

- every worker queue has a Deployment running the worker that consumes it
  (``WORKER_QUEUES``: the serving worker also consumes ``batch``) and a KEDA
  ScaledObject with a redis trigger on the queue's real list name, and the
  Celery app gives no task a priority (so kombu's priority sub-lists stay empty);
- training and serving keep at least one replica;
- every Deployment and StatefulSet has readiness and liveness probes; every
  container has requests and limits and a non-root, read-only, unprivileged
  security context; every such workload has a PodDisruptionBudget;
- the gateway has an HPA and reads ADMIN_API_KEY from the Secret with
  ``optional: false``, as every Secret reference is;
- a worker's grace period outlasts the hard time limit of the longest task of
  its queues (warm shutdown lets the running task finish), and its pool
  memory limit fits the container;
- a Job that creates the bucket creates the one in the ConfigMap.

Prints one line per file and every problem found; exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from shared import keys
from shared.celery_app import QUEUES, WORKER_QUEUES, app
from shared.settings import Settings

SCHEMAS = Path(__file__).resolve().parent / "schemas"
KEDA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    (
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
    ): "triggerauthentication-keda-v1alpha1.json",
}
DEFAULT_KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
WORKLOADS = ("Deployment", "StatefulSet", "Job")
LONG_RUNNING = ("Deployment", "StatefulSet")
CLUSTER_SCOPED = ("Namespace",)
GATEWAY = "gateway"
SECRET = "eduml-secrets"
# Queues whose workers must never scale to zero: serving answers predictions
# while the gateway waits; training hosts the reaper that revives lost jobs.
ALWAYS_ON = ("training", "serving")
# What a worker's main process (Celery, the heartbeat, the reaper) may use on
# top of its pool processes, each capped by WORKER_MAX_MEMORY_MIB.
MAIN_PROCESS_MIB = 512
# The worker task of each queue, whose time limits the grace period must outlast.
TASK_MODULES = {
    "training": ("services.training.tasks", "train", "training_time_limit_s"),
    "evaluation": ("services.evaluation.tasks", "evaluate", "evaluation_time_limit_s"),
    "serving": ("services.serving.tasks", "predict", "serving_time_limit_s"),
    "batch": ("services.serving.batch", "score", "batch_time_limit_s"),
}
UNITS = {
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "k": 1000 / 1024**2,
    "M": 1000**2 / 1024**2,
    "G": 1000**3 / 1024**2,
}


@dataclass
class Report:
    """Problems found in one file, each naming the object and what is wrong."""

    source: str
    problems: list[str] = field(default_factory=list)

    def add(self, obj: dict[str, Any] | None, message: str) -> None:
        where = f"{obj['kind']}/{obj['metadata']['name']}" if obj else "render"
        problem = f"{self.source}: {where}: {message}"
        if problem not in self.problems:
            self.problems.append(problem)


# --- schemas ------------------------------------------------------------------


def load_objects(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [obj for obj in yaml.safe_load_all(stream) if obj]


def check_schemas(
    objects: list[dict[str, Any]], versions: list[str], report: Report
) -> None:
    for obj in objects:
        keda = KEDA_SCHEMAS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        if keda:
            check_keda(obj, keda, report)
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                report.add(obj, f"Kubernetes {version} schema: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                report.add(obj, f"no schema to validate it against: {error.message}")


def check_keda(obj: dict[str, Any], schema_file: str, report: Report) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
        path = ".".join(str(part) for part in error.path) or "(object)"
        report.add(obj, f"KEDA schema {schema_file}: {path}: {error.message}")


# --- the platform's needs ------------------------------------------------------


@dataclass
class Render:
    """One rendered overlay, with the look-ups the checks share."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any] | None:
        return next(
            (o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None
        )

    def config(self) -> dict[str, str]:
        maps = [
            o
            for o in self.of_kind("ConfigMap")
            if o["metadata"]["name"].startswith("eduml-config")
        ]
        return dict(maps[0].get("data", {})) if maps else {}

    def workers(self) -> dict[str, dict[str, Any]]:
        """The Deployment of each worker, found by the service its container runs
        (a worker is named after its first queue)."""
        found = {}
        for deployment in self.of_kind("Deployment"):
            args = pod_spec(deployment)["containers"][0].get("args", [])
            if args and args[0] in WORKER_QUEUES:
                found[args[0]] = deployment
        return found


def worker_of(queue: str) -> str:
    """The worker that consumes ``queue``."""
    return next(worker for worker, queues in WORKER_QUEUES.items() if queue in queues)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env_value(container: dict[str, Any], name: str) -> str | None:
    for variable in container.get("env", []):
        if variable["name"] == name:
            return variable.get("value")
    return None


def mebibytes(quantity: str | int) -> float:
    text = str(quantity)
    match = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|k|M|G)?", text)
    if not match:
        raise ValueError(f"memory quantity {text!r} is not understood")
    number, unit = match.groups()
    return float(number) * UNITS[unit] if unit else float(number) / 1024**2


def check_render(objects: list[dict[str, Any]], report: Report) -> None:
    render = Render(objects)
    check_namespace(render, report)
    check_workloads(render, report)
    check_disruption_budgets(render, report)
    check_queues(render, report)
    check_gateway(render, report)
    check_secret_references(render, report)
    check_shutdown(render, report)
    check_memory(render, report)
    check_bucket(render, report)


def check_namespace(render: Render, report: Report) -> None:
    namespaces = [o["metadata"]["name"] for o in render.of_kind("Namespace")]
    if len(namespaces) != 1:
        report.add(None, f"expected one Namespace, found {namespaces}")
        return
    for obj in render.objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] not in CLUSTER_SCOPED and namespace != namespaces[0]:
            report.add(obj, f"namespace is {namespace!r}, not {namespaces[0]!r}")


def check_workloads(render: Render, report: Report) -> None:
    for workload in (o for o in render.objects if o["kind"] in WORKLOADS):
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            report.add(workload, "automountServiceAccountToken must be false")
        for container in containers(workload):
            check_container(workload, container, pod_context, report)


def check_container(
    workload: dict[str, Any],
    container: dict[str, Any],
    pod_context: dict[str, Any],
    report: Report,
) -> None:
    name = container["name"]
    if workload["kind"] in LONG_RUNNING:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                report.add(workload, f"container {name}: no {probe}")
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(part, {}))
        if missing:
            report.add(
                workload, f"container {name}: resources.{part} lacks {sorted(missing)}"
            )
    context = container.get("securityContext", {})

    def setting(key: str) -> Any:
        return context.get(key, pod_context.get(key))

    if setting("runAsNonRoot") is not True:
        report.add(workload, f"container {name}: runAsNonRoot is not true")
    if context.get("readOnlyRootFilesystem") is not True:
        report.add(workload, f"container {name}: readOnlyRootFilesystem is not true")
    if context.get("allowPrivilegeEscalation") is not False:
        report.add(workload, f"container {name}: allowPrivilegeEscalation is not false")
    if context.get("privileged"):
        report.add(workload, f"container {name}: privileged")
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        report.add(workload, f"container {name}: capabilities do not drop ALL")
    if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
        report.add(workload, f"container {name}: seccompProfile is not RuntimeDefault")


def check_disruption_budgets(render: Render, report: Report) -> None:
    budgets = [
        b["spec"]["selector"]["matchLabels"]
        for b in render.of_kind("PodDisruptionBudget")
    ]
    for workload in (o for o in render.objects if o["kind"] in LONG_RUNNING):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if not any(selector.items() <= labels.items() for selector in budgets):
            report.add(workload, "no PodDisruptionBudget selects its pods")


def check_queues(render: Render, report: Report) -> None:
    check_priorities_off(report)
    workers = render.workers()
    scaled = {
        so["spec"]["scaleTargetRef"]["name"]: so
        for so in render.of_kind("ScaledObject")
    }
    for queue in QUEUES:
        worker = worker_of(queue)
        deployment = workers.get(worker)
        if deployment is None:
            report.add(None, f"no Deployment runs the worker of queue {queue!r}")
            continue
        name = deployment["metadata"]["name"]
        container = pod_spec(deployment)["containers"][0]
        probe = " ".join(
            container.get("livenessProbe", {}).get("exec", {}).get("command", [])
        )
        if f"{worker}@%h" not in probe:
            report.add(
                deployment, f"its probe does not check the worker {worker}@%h: {probe}"
            )
        scaled_object = scaled.get(name)
        if scaled_object is None:
            report.add(deployment, f"no ScaledObject scales it on queue {queue!r}")
            continue
        check_trigger(render, scaled_object, queue, report)
        if queue in ALWAYS_ON and scaled_object["spec"].get("minReplicaCount", 0) < 1:
            report.add(
                scaled_object, f"minReplicaCount must be at least 1 for {queue!r}"
            )


def check_priorities_off(report: Report) -> None:
    """One list per queue holds every task only while no task has a priority."""
    conf = app.conf
    with_priority = [q.name for q in conf.task_queues if q.max_priority is not None]
    if (
        conf.task_default_priority is not None
        or conf.task_queue_max_priority is not None
    ):
        report.add(
            None,
            "the Celery app sets a task priority: KEDA would miss the "
            "priority sub-lists " + repr(keys.queue_lists(QUEUES[0])[1:]),
        )
    if with_priority:
        report.add(
            None,
            f"queues {with_priority} take priorities: their sub-lists need "
            "triggers too",
        )


def check_trigger(
    render: Render, scaled_object: dict[str, Any], queue: str, report: Report
) -> None:
    list_name = keys.queue_lists(queue)[0]
    triggers = [t for t in scaled_object["spec"]["triggers"] if t["type"] == "redis"]
    if not any(t["metadata"].get("listName") == list_name for t in triggers):
        report.add(scaled_object, f"no redis trigger on the list {list_name!r}")
    for trigger in triggers:
        reference = trigger.get("authenticationRef", {}).get("name")
        if reference and render.named("TriggerAuthentication", reference) is None:
            report.add(
                scaled_object,
                f"TriggerAuthentication {reference!r} is not in the render",
            )


def check_gateway(render: Render, report: Report) -> None:
    gateway = next(
        (
            d
            for d in render.of_kind("Deployment")
            if pod_spec(d)["containers"][0].get("args", [None])[0] == GATEWAY
        ),
        None,
    )
    if gateway is None:
        report.add(None, "no Deployment runs the gateway")
        return
    name = gateway["metadata"]["name"]
    if not any(
        h["spec"]["scaleTargetRef"]["name"] == name
        for h in render.of_kind("HorizontalPodAutoscaler")
    ):
        report.add(gateway, "no HorizontalPodAutoscaler scales it")
    container = pod_spec(gateway)["containers"][0]
    admin = [v for v in container.get("env", []) if v["name"] == "ADMIN_API_KEY"]
    reference = admin[0].get("valueFrom", {}).get("secretKeyRef") if admin else None
    if not reference or reference.get("optional") is not False:
        report.add(
            gateway, "ADMIN_API_KEY must come from a Secret with optional: false"
        )
    grace = pod_spec(gateway).get("terminationGracePeriodSeconds", 30)
    pre_stop = (
        container.get("lifecycle", {})
        .get("preStop", {})
        .get("exec", {})
        .get("command", [])
    )
    pause = int(pre_stop[-1]) if pre_stop[:1] == ["sleep"] else 0
    drain = int(env_value(container, "GATEWAY_SHUTDOWN_S") or 0)
    if pause + drain >= grace:
        report.add(
            gateway,
            f"preStop {pause} s + graceful shutdown {drain} s do not fit "
            f"the grace period of {grace} s",
        )


def check_secret_references(render: Render, report: Report) -> None:
    secret = render.named("Secret", SECRET)
    provided = set((secret or {}).get("data", {})) | set(
        (secret or {}).get("stringData", {})
    )
    wanted: set[str] = set()
    for workload in (o for o in render.objects if o["kind"] in WORKLOADS):
        for container in containers(workload):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference is None:
                    continue
                if reference.get("optional") is not False:
                    report.add(
                        workload,
                        f"{variable['name']}: secretKeyRef must say optional: false",
                    )
                if reference["name"] == SECRET:
                    wanted.add(reference["key"])
    for auth in render.of_kind("TriggerAuthentication"):
        wanted |= {
            r["key"]
            for r in auth["spec"].get("secretTargetRef", [])
            if r["name"] == SECRET
        }
    if secret is not None and wanted - provided:
        report.add(secret, f"lacks the keys {sorted(wanted - provided)}")


def check_shutdown(render: Render, report: Report) -> None:
    """A stopped worker finishes its task: the grace period outlasts the task."""
    config, defaults = render.config(), Settings()
    soft_shutdown = float(app.conf.worker_soft_shutdown_timeout or 0)
    longest = 0
    for worker, deployment in render.workers().items():
        hard_limit = 0
        for queue in WORKER_QUEUES[worker]:
            module, task_name, setting = TASK_MODULES[queue]
            task = getattr(__import__(module, fromlist=[task_name]), task_name)
            soft_limit = int(config.get(setting.upper(), getattr(defaults, setting)))
            hard_limit = max(
                hard_limit, soft_limit + (task.time_limit - task.soft_time_limit)
            )
        longest = max(longest, hard_limit)
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
        if grace <= hard_limit + soft_shutdown:
            report.add(
                deployment,
                f"grace period {grace} s does not outlast the hard time limit of "
                f"{hard_limit} s of the longest task of its queues",
            )
    visibility = int(config.get("VISIBILITY_TIMEOUT_S", defaults.visibility_timeout_s))
    if visibility <= longest:
        report.add(
            None,
            f"VISIBILITY_TIMEOUT_S {visibility} s must exceed the longest "
            f"task ({longest} s), or Redis re-delivers running tasks",
        )


def check_memory(render: Render, report: Report) -> None:
    for deployment in render.workers().values():
        container = pod_spec(deployment)["containers"][0]
        pool = int(env_value(container, "WORKER_CONCURRENCY") or 1)
        per_process = int(env_value(container, "WORKER_MAX_MEMORY_MIB") or 0)
        if not per_process:
            report.add(deployment, "WORKER_MAX_MEMORY_MIB is not set")
            continue
        memory = container.get("resources", {}).get("limits", {}).get("memory")
        if memory is None:
            continue  # check_container reports the missing limit
        limit = mebibytes(memory)
        needed = pool * per_process + MAIN_PROCESS_MIB
        if needed > limit:
            report.add(
                deployment,
                f"{pool} x {per_process} MiB + {MAIN_PROCESS_MIB} MiB "
                f"exceeds the memory limit of {limit:.0f} MiB",
            )


def check_bucket(render: Render, report: Report) -> None:
    """A Job that makes the bucket makes the one the platform uses."""
    bucket = render.config().get("S3_BUCKET", Settings().s3_bucket)
    for job in render.of_kind("Job"):
        for container in containers(job):
            named = env_value(container, "S3_BUCKET")
            if named is not None and named != bucket:
                report.add(
                    job, f"creates bucket {named!r}, the platform uses {bucket!r}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renders", nargs="+", type=Path, help="rendered overlays")
    parser.add_argument(
        "--template",
        action="append",
        type=Path,
        default=[],
        help="manifests checked against the schemas only",
    )
    parser.add_argument("--kubernetes-version", action="append", dest="versions")
    args = parser.parse_args()
    versions = args.versions or DEFAULT_KUBERNETES_VERSIONS

    problems = []
    for path, full in [(p, True) for p in args.renders] + [
        (p, False) for p in args.template
    ]:
        objects = load_objects(path)
        report = Report(str(path))
        check_schemas(objects, versions, report)
        if full:
            check_render(objects, report)
        kinds = sorted({o["kind"] for o in objects})
        verdict = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
        print(
            f"{path}: {len(objects)} objects ({', '.join(kinds)}) against Kubernetes "
            f"{', '.join(versions)} and KEDA: {verdict}"
        )
        problems += report.problems
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
