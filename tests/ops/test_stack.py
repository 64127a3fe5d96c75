"""The docker-compose stack: valid for Debian's docker-compose, and wired to what the code expects.

No Docker engine runs here, so containers cannot start; instead every connection the code makes is
checked against the resolved compose file: the FINFEAST_* settings of each app service name a
defined service on the right port with matching credentials, each command parses with the real
`finfeast` CLI, Prometheus scrapes services that exist on the port their metrics are served on,
Grafana's data source points at Prometheus, and every metric a dashboard panel queries is one the
code really exports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from finfeast.config import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DEPLOY = REPO_ROOT / "deploy"
APP_SERVICES = ("bootstrap", "feature-server", "stream-market", "stream-accounts")
REQUIRED_SERVICES = {
    "kafka",
    "redis",
    "postgres",
    "feature-server",
    "stream-market",
    "stream-accounts",
    "prometheus",
    "grafana",
}


@pytest.fixture(scope="module")
def compose_cmd(program) -> list[str]:
    """docker-compose (Debian 1.29) with the variables of .env.example."""
    return [program("docker-compose"), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE)]


def _env_example_keys() -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


def _compose(
    compose_cmd: list[str], *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run docker-compose; the shell would win over --env-file, so its copies are dropped."""
    keys = _env_example_keys()
    env = {k: v for k, v in os.environ.items() if k not in keys}
    return subprocess.run(
        [*compose_cmd, *args],
        cwd=REPO_ROOT,
        env={**env, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose(compose_cmd: list[str]) -> dict:
    """The compose file as docker-compose resolves it (variables from .env.example)."""
    out = _compose(compose_cmd, "--profile", "replay", "config")
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _settings_of(service: dict, monkeypatch: pytest.MonkeyPatch):
    """The Settings `finfeast` would build inside this container (data dir checked apart)."""
    from finfeast.config import load_settings

    for key in list(os.environ):
        if key.startswith("FINFEAST_"):
            monkeypatch.delenv(key)
    for key, value in _env(service).items():
        if key.startswith("FINFEAST_") and key != "FINFEAST_DATA_DIR":
            monkeypatch.setenv(key, value)
    return load_settings()


def test_compose_file_is_valid_for_debian_docker_compose(compose_cmd: list[str]) -> None:
    out = _compose(compose_cmd, "config", "-q")
    assert out.returncode == 0, out.stderr
    # An unset ${VAR} only warns: every variable must come from .env.example.
    assert "is not set" not in out.stderr, out.stderr


def test_every_compose_variable_is_defined_in_env_example() -> None:
    used = _compose_variables()
    defined = _env_example_keys()
    assert used, "compose file uses no variables at all?"
    assert used <= defined, f"missing from .env.example: {sorted(used - defined)}"


def _compose_variables() -> set[str]:
    return set(re.findall(r"\$\{(\w+)(?::?-[^}]*)?\}", COMPOSE_FILE.read_text()))


def test_laptop_settings_in_the_shell_never_reach_the_containers(compose_cmd: list[str]) -> None:
    """`eval "$(finfeast env)"` exports FINFEAST_* (127.0.0.1 hosts); the shell wins over .env in
    compose, so no compose variable may share a name with them."""
    from finfeast.config import Settings

    laptop = Settings().env()
    assert not _compose_variables() & set(laptop), _compose_variables() & set(laptop)
    out = _compose(compose_cmd, "config", extra_env=laptop)
    assert out.returncode == 0, out.stderr
    app = yaml.safe_load(out.stdout)["services"]["feature-server"]
    assert _env(app)["FINFEAST_PG_HOST"] == "postgres"


def test_env_example_holds_no_real_secret() -> None:
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, _, value = line.partition("=")
        if "PASSWORD" in key and not key.lstrip().startswith("#"):
            assert value.startswith("change-me"), f"{key} must be a placeholder in .env.example"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO_ROOT, check=False
    ).returncode
    assert ignored == 0, ".env (the real secrets) must be git-ignored"


def test_every_expected_service_is_defined(services: dict) -> None:
    assert REQUIRED_SERVICES <= set(services), REQUIRED_SERVICES - set(services)
    kafka_image = services["kafka"]["image"]
    assert kafka_image.startswith("apache/kafka:"), kafka_image
    for name, svc in services.items():
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"


def test_kafka_runs_in_kraft_mode(services: dict) -> None:
    env = _env(services["kafka"])
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(env).upper()
    assert env["CLUSTER_ID"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_reaches_its_dependencies_by_service_name(
    name: str, services: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = services[name]
    settings = _settings_of(svc, monkeypatch)
    assert settings.profile == "prod"
    depends = set(svc.get("depends_on") or ())

    pg_env = _env(services[settings.pg_host])  # KeyError = not a defined service
    assert settings.pg_port == 5432  # the postgres image's port
    assert (settings.pg_user, settings.pg_password, settings.pg_db) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )

    redis_cmd = services[settings.redis_host]["command"]
    assert settings.redis_port == 6379
    assert redis_cmd[redis_cmd.index("--requirepass") + 1] == settings.redis_password

    kafka_host, kafka_port = settings.kafka_bootstrap.split(":")
    advertised = _env(services[kafka_host])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{kafka_host}:{kafka_port}" in advertised, advertised

    assert {settings.pg_host, settings.redis_host, kafka_host} <= depends, depends

    data_mounts = [v for v in svc["volumes"] if _volume_target(v) == _env(svc)["FINFEAST_DATA_DIR"]]
    assert data_mounts, f"{name}: FINFEAST_DATA_DIR must be a mounted volume"
    assert _volume_read_only(data_mounts[0]), "the real data is mounted read-only"


def _volume_target(volume: dict | str) -> str:
    return volume["target"] if isinstance(volume, dict) else volume.split(":")[1]


def _volume_read_only(volume: dict | str) -> bool:
    return volume.get("read_only", False) if isinstance(volume, dict) else volume.endswith(":ro")


@pytest.mark.parametrize("name", [*APP_SERVICES, "replay-market", "replay-trades"])
def test_app_service_command_parses_with_the_finfeast_cli(name: str, services: dict) -> None:
    from finfeast.cli import build_parser

    command = services[name]["command"]
    assert command[0] == "finfeast"
    args = build_parser().parse_args(command[1:])  # SystemExit on an unknown flag
    assert callable(args.handler)
    assert getattr(args, "profile", None) == "prod"


def test_app_services_are_built_from_the_dockerfile(services: dict) -> None:
    dockerfile = REPO_ROOT / services["feature-server"]["build"]["dockerfile"]
    text = dockerfile.read_text()
    sources = [
        line.split()[1]
        for line in text.splitlines()
        if line.startswith("COPY ") and not line.split()[1].startswith("--")
    ]
    for src in sources:
        assert (REPO_ROOT / src).exists(), f"Dockerfile copies missing {src}"
    assert not any("data" in src for src in sources), "market data must be mounted, not copied"
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in [line.strip() for line in ignore], "the build context must start empty"
    included = {line[1:].strip().rstrip("/") for line in ignore if line.startswith("!")}
    missing = [src for src in sources if src.rstrip("/") not in included]
    assert not missing, f".dockerignore drops what the Dockerfile copies: {missing}"
    images = {services[n]["image"] for n in APP_SERVICES}
    assert len(images) == 1, "one app image for every role"


def _scrape_targets(prom: dict) -> dict[str, list[tuple[str, int]]]:
    targets: dict[str, list[tuple[str, int]]] = {}
    for job in prom["scrape_configs"]:
        found = targets.setdefault(job["job_name"], [])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                found.append((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            found += [(host, int(dns["port"])) for host in dns["names"]]
    return targets


def _metrics_endpoint(service: dict) -> tuple[str, int]:
    """(bind host, port) of a finfeast service's /metrics.

    Stream jobs: --metrics-port, bound to FINFEAST_METRICS_HOST (stream_jobs/jobs.py, loopback by
    default); the feature server: /metrics on its HTTP --host/--port.
    """
    command = service["command"]
    if "--metrics-port" in command:
        host = _env(service).get("FINFEAST_METRICS_HOST", "127.0.0.1")
        return host, int(command[command.index("--metrics-port") + 1])
    if "--port" in command:
        host = command[command.index("--host") + 1] if "--host" in command else "127.0.0.1"
        return host, int(command[command.index("--port") + 1])
    raise AssertionError(f"no metrics endpoint in {command}")


def test_prometheus_config_is_valid_and_scrapes_defined_services(services: dict, program) -> None:
    config = DEPLOY / "prometheus" / "prometheus.yml"
    promtool = program("promtool")
    check = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    targets = _scrape_targets(yaml.safe_load(config.read_text()))
    scraped = {host for pairs in targets.values() for host, _ in pairs} - {"localhost"}
    assert {"feature-server", "stream-market", "stream-accounts"} <= scraped
    for host, port in (pair for pairs in targets.values() for pair in pairs):
        if host == "localhost":
            continue
        assert host in services, f"scrape target {host} is not a compose service"
        bind, served = _metrics_endpoint(services[host])
        assert served == port, f"{host} serves /metrics on :{served}, Prometheus scrapes :{port}"
        assert bind == "0.0.0.0", f"{host} binds /metrics to {bind}: unreachable from prometheus"
    prom = services["prometheus"]
    assert any(_volume_target(v) == "/etc/prometheus/prometheus.yml" for v in prom["volumes"])


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards(services: dict) -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    host_port = ds["url"].split("//", 1)[1]
    host, port = host_port.split(":")
    assert host in services and port == "9090"
    provider = yaml.safe_load((prov / "dashboards" / "finfeast.yml").read_text())["providers"][0]
    targets = {_volume_target(v) for v in services["grafana"]["volumes"]}
    assert "/etc/grafana/provisioning" in targets
    assert provider["options"]["path"] in targets
    dashboard = DEPLOY / "grafana" / "dashboards" / "finfeast.json"
    uids = {
        t["datasource"]["uid"]
        for p in json.loads(dashboard.read_text())["panels"]
        for t in p["targets"]
    }
    assert uids == {ds["uid"]}


def test_dashboard_json_is_generated_from_its_panel_list() -> None:
    out = subprocess.run(
        [sys.executable, str(DEPLOY / "grafana" / "build_dashboard.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def _exported_metric_names() -> set[str]:
    """Sample names the code exports: the stream jobs' registry and the feature server's."""
    from stream_jobs.metrics import JobMetrics

    names: set[str] = set()
    for metric in JobMetrics("probe").registry.collect():
        names.add(metric.name)
        names |= _sample_names(metric.name, metric.type)
    names |= _serving_metric_names()
    return names


def _sample_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def _serving_metric_names() -> set[str]:
    """Metric families the feature server exports (finfeast.serving.metrics)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import prometheus_client as p\n"
            "from finfeast.serving.metrics import server_metrics\n"
            "server_metrics()\n"
            "for m in p.REGISTRY.collect(): print(m.name, m.type)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    names: set[str] = set()
    for line in out.stdout.splitlines():
        name, kind = line.split()
        names |= _sample_names(name, kind)
    return names


def test_every_dashboard_metric_is_exported_by_the_code() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "finfeast.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in re.findall(r"\b((?:finfeast|feast)_\w+)", e)}
    assert queried, "no metrics in the dashboard?"
    exported = _exported_metric_names()
    missing = sorted(queried - exported)
    assert not missing, f"dashboard queries metrics nobody exports: {missing}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "freshness", "dead-letter", "latency", "anomaly"):
        assert topic in titles, f"no {topic} panel"


def test_every_dashboard_query_is_valid_promql(program, tmp_path) -> None:
    """promtool parses each panel's expression (as a recording rule) — a typo fails here."""
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "finfeast.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"finfeast:panel_query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        [program("promtool"), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(exprs)} rules found" in out.stdout
