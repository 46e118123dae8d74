"""docker-compose.yml, Dockerfile and .env.example: no compose engine runs here, so these checks are
what stands between a typo and a deployment that fails on a fresh machine.

The file is validated against the Compose Specification schema (../shared/schemas/compose-spec.json;
skipped cleanly when absent), then checked for what the deployment needs: the services, health
checks, volumes, secrets only from the environment, and ports on localhost only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
LONG_RUNNING = {"elasticsearch", "kibana", "postgres", *AIRFLOW_SERVICES}
ONE_SHOT = {"es-setup", "newsmon-setup", "airflow-init"}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (REPO / "docker-compose.yml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_validates_against_the_compose_specification(compose):
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.is_file():
        pytest.skip(f"compose schema not available at {SCHEMA}")
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # a validator that accepts anything would prove nothing
    broken = dict(compose, services=dict(compose["services"], postgres={"image": "postgres", "healthcheck": "yes"}))
    assert list(validator.iter_errors(broken))


def test_every_service_is_there(services):
    assert set(services) == LONG_RUNNING | ONE_SHOT


def test_elasticsearch_9_single_node_with_security(services):
    es = services["elasticsearch"]
    assert re.fullmatch(r"docker\.elastic\.co/elasticsearch/elasticsearch:\$\{ELASTIC_STACK_VERSION:-9\.\d+\.\d+\}",
                        es["image"])
    env = set(es["environment"])
    assert {"discovery.type=single-node", "xpack.security.enabled=true"} <= env
    assert "ELASTIC_PASSWORD=${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD (see .env.example)}" in env
    assert services["kibana"]["image"].startswith("docker.elastic.co/kibana/kibana:${ELASTIC_STACK_VERSION")


def test_long_running_services_have_health_checks_and_restart(services):
    for name in LONG_RUNNING:
        service = services[name]
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name


def test_dependencies_exist_and_wait_for_health(services):
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == {"condition": expected}, f"{name} -> {dependency}"


def test_airflow_runs_from_the_dockerfile_with_local_executor_and_postgres(services):
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert service["command"] == [command]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?")
        assert env["NEWSMON_STORE"] == "elasticsearch+http://elasticsearch:9200"
        connection = json.loads(env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])
        assert (connection["conn_type"], connection["host"], connection["port"]) == ("elasticsearch", "elasticsearch",
                                                                                        9200)
        assert {"postgres", "newsmon-setup", "airflow-init"} <= set(service["depends_on"])
    assert services["airflow-init"]["command"] == ["db", "migrate"]
    assert services["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]


def test_setup_service_runs_the_setup_script_on_the_mounted_config(services):
    setup = services["newsmon-setup"]
    assert setup["entrypoint"] == ["bash", "/newsmon-config/elasticsearch/setup.sh"]
    assert "./config:/newsmon-config:ro" in setup["volumes"]
    assert set(setup["depends_on"]) == {"elasticsearch", "kibana"}
    script = (REPO / "config" / "elasticsearch" / "setup.sh").read_text(encoding="utf-8")
    for referenced in re.findall(r'\$ES_DIR/([\w./-]+\.json)', script):
        assert (REPO / "config" / "elasticsearch" / referenced).is_file(), referenced
    assert list((REPO / "config" / "kibana").glob("*.ndjson"))


def test_named_volumes_are_declared_and_used(compose, services):
    declared = set(compose["volumes"])
    used = set()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    assert {"esdata", "pgdata", "kibanadata"} <= declared


def test_ports_only_on_localhost(services):
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published
    for port in published:
        assert str(port).startswith("127.0.0.1:"), port


def test_secrets_only_from_the_environment_and_all_in_env_example(compose_text):
    assert "change-me" not in compose_text
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", compose_text))
    assert {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "POSTGRES_PASSWORD", "NEWSMON_ES_PASSWORD",
            "AIRFLOW_FERNET_KEY"} <= required
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    assert required <= defined, f"missing from .env.example: {sorted(required - defined)}"
    for line in example.splitlines():
        if re.match(r"^[A-Z0-9_]*(PASSWORD|SECRET|KEY)[A-Z0-9_]*=", line):
            assert "change-me" in line, f".env.example holds a value that looks real: {line}"


def test_dockerfile_installs_the_project_with_the_constraints_file():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    install = next(line for line in dockerfile.splitlines() if "pip install" in line)
    assert "--constraint constraints.txt" in install and '".[airflow]"' in install
    for copied in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE):
        for path in copied.split():
            assert (REPO / path).exists(), f"Dockerfile copies missing {path}"
    assert re.search(r'^ENTRYPOINT \["tini", "--", "airflow"\]$', dockerfile, re.MULTILINE)
    assert "USER 50000" in dockerfile
    constraints = (REPO / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^apache-airflow==3\.3\.", constraints, re.MULTILINE)
