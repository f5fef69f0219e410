"""docker-compose.yaml and the Dockerfile, checked offline (no Docker engine): valid, every mounted
path in the repository, pins equal to requirements.txt, and the same Airflow settings as `make run`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-init")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the anchors and `<<` merges


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def run_airflow_exports() -> dict[str, str]:
    """`export NAME=value` lines of scripts/run-airflow.sh, with `${VAR:-default}` taken as its default."""
    exports = {}
    for line in (ROOT / "scripts" / "run-airflow.sh").read_text().splitlines():
        match = re.match(r'^\s*export (AIRFLOW\w*)="?(.*?)"?(\s+#.*)?$', line)
        if match:
            exports[match.group(1)] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", match.group(2))
    return exports


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose()["services"][service]["environment"].items()}


def mounts(service: str) -> dict[str, str]:
    """container path -> host path of a service's volumes."""
    result = {}
    for volume in compose()["services"][service]["volumes"]:
        source, target = re.fullmatch(r"(.+?):(/[^:]*)(:r[ow])?", volume).group(1, 2)  # ${X:-y} has a colon
        result[target] = source
    return result


def test_docker_compose_validates_the_file_offline(tmp_path):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("Debian's docker-compose is not installed: scripts/ensure-chromium.sh installs it (make test)")
    for env_file in (None, ROOT / ".env.example"):
        args = [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE)]
        args += ["--env-file", str(env_file)] if env_file else []
        done = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    resolved = subprocess.run([binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60,
                              cwd=ROOT).stdout
    assert set(AIRFLOW_SERVICES) | {"postgres"} == set(yaml.safe_load(resolved)["services"])


def test_every_airflow_service_shares_the_env_block_image_and_uid():
    doc = compose()
    for name in AIRFLOW_SERVICES:
        service = doc["services"][name]
        assert service["build"] == "." and service["image"] == doc["x-airflow-common"]["image"], name
        assert env(name)["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert "AIRFLOW_UID" in service["user"] or name == "airflow-init", name
    commands = {n: doc["services"][n].get("command") for n in AIRFLOW_SERVICES[:-1]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}


def test_health_checks_and_start_order():
    services = compose()["services"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "http://localhost:8080/api/v2/monitor/health" in services["airflow-apiserver"]["healthcheck"]["test"]
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    for name in AIRFLOW_SERVICES[:-1]:
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
    assert env("airflow-init")["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "chown" in services["airflow-init"]["command"][-1]


def test_every_mounted_repository_path_exists_and_sits_where_the_package_looks():
    for service in AIRFLOW_SERVICES:
        for target, source in mounts(service).items():
            if source.startswith("./"):
                assert (ROOT / source).is_dir(), f"{service} mounts {source}, which is not in the repository"
    volumes = mounts("airflow-scheduler")
    assert volumes["/opt/airflow/dags"] == "./dags" and volumes["/opt/airflow/plugins"] == "./plugins"
    # core.manifests finds include/ next to the plugins folder's parent, as in the repository.
    assert volumes["/opt/airflow/include"] == "./include"
    assert volumes["/opt/airflow/kubeconfig"].startswith("${KUBECONFIG_PATH")
    assert compose()["x-airflow-common"]["volumes"][3].endswith(":ro"), "the kubeconfig is mounted read-only"


def test_the_image_pins_match_requirements_txt():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, re.M)
    assert base, "the Dockerfile starts from apache/airflow:<version>-python<version>"
    assert base.group(1) == requirement_pins()["apache-airflow"]
    assert base.group(2) == "3.11" and ">=3.11,<3.12" in (ROOT / "pyproject.toml").read_text()
    assert "-r /requirements.txt" in dockerfile and "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text()
    assert compose()["x-airflow-common"]["image"].endswith(":" + requirement_pins()["apache-airflow"])


def test_airflow_settings_match_make_run():
    exports, common = run_airflow_exports(), env("airflow-scheduler")
    for key in ("AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"):
        assert common[key] == exports[key], key
    volumes = mounts("airflow-scheduler")
    for key, repo_dir in (("AIRFLOW__CORE__DAGS_FOLDER", "dags"), ("AIRFLOW__CORE__PLUGINS_FOLDER", "plugins")):
        assert exports[key] == f"$here/{repo_dir}" and volumes[common[key]] == f"./{repo_dir}", key
    # `make run` is `airflow standalone`, which runs Airflow's default executor: LocalExecutor.
    from airflow.configuration import conf

    assert "AIRFLOW__CORE__EXECUTOR" not in exports
    assert conf.get_default_value("core", "executor") == common["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    kube = json.loads(common["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    assert kube == {"conn_type": "kubernetes", "extra": {"kube_config_path": "/opt/airflow/kubeconfig"}}
    run_script = (ROOT / "scripts" / "run-airflow.sh").read_text()
    assert 'kube_config_path\\": \\"$kubeconfig' in run_script, "make run points kubernetes_default at a kubeconfig too"
    assert common["AIRFLOW_CONN_ANTDB_DEFAULT"] == "${AIRFLOW_CONN_ANTDB_DEFAULT:-}"
    assert "AIRFLOW_CONN_ANTDB_DEFAULT" in (ROOT / ".env.example").read_text()


def test_env_file_is_ignored_and_its_example_committed():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and (ROOT / ".env.example").is_file()
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    referenced = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE.read_text()))
    assert referenced <= set(example), f"not in .env.example: {sorted(referenced - set(example))}"
