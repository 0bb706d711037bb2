"""docker-compose.yml matches the code: services, LORE_* variables, commands (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
import yaml

from lore.cli import app as cli_app
from lore.healthcheck import CHECKS
from lore.settings_doc import iter_settings

ROOT = Path(__file__).resolve().parents[2]
LORE_SERVICES = ("migrate", "api", "worker", "watcher", "beat")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _cli_commands() -> dict:
    """The ``lore`` subcommands by name (typer's own click build)."""
    return dict(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]


def test_every_service_is_there(services):
    assert set(services) == {*LORE_SERVICES, "redis", "postgres", "vllm"}


def test_every_service_has_a_health_check_or_runs_once(services):
    for name, svc in services.items():
        if name == "migrate":
            assert svc["restart"] == "no"
            continue
        assert "healthcheck" in svc, f"{name} has no health check"
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_lore_services_wait_for_migrate_and_healthy_services(services):
    for name in ("api", "worker", "watcher", "beat"):
        deps = services[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["redis"] == {"condition": "service_healthy"}, name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["vllm"]["condition"] == "service_healthy"


def test_lore_variables_are_real_settings(services):
    known = {s.env for s in iter_settings()}
    used = set()
    for name in LORE_SERVICES:
        env = services[name]["environment"]
        used |= {key for key in env if key.startswith("LORE_")}
    assert used, "no LORE_* settings passed to the Lore services"
    assert used <= known, f"not settings: {sorted(used - known)}"
    assert {"LORE_DATABASE__URL", "LORE_WORKER__BROKER_URL", "LORE_LLM__BASE_URL"} <= used


def test_production_wiring(services):
    env = services["api"]["environment"]
    assert env["LORE_ENV"] == "production"
    assert env["LORE_DATABASE__URL"].startswith("postgresql+psycopg://")
    assert env["LORE_WORKER__BROKER_URL"] == "redis://redis:6379/0"
    assert "http://vllm:8000/v1" in env["LORE_LLM__BASE_URL"]
    assert all(services[n]["environment"] == env for n in LORE_SERVICES)


def test_commands_are_real_lore_subcommands(services):
    commands = _cli_commands()
    for name in LORE_SERVICES:
        argv = services[name]["command"]
        assert argv[0] in commands, f"{name}: `lore {argv[0]}` does not exist"
        params = {opt for p in commands[argv[0]].params for opt in getattr(p, "opts", [])}
        for arg in argv[1:]:
            if arg.startswith("--"):
                assert arg in params, f"{name}: `lore {argv[0]}` has no option {arg}"
    assert services["worker"]["command"][-1].split(",") == ["ingest", "synth", "render"]


def test_health_checks_name_real_checks(services):
    for name in ("api", "worker", "watcher", "beat"):
        test = services[name]["healthcheck"]["test"]
        assert test[1:4] == ["python", "-m", "lore.healthcheck"]
        assert test[4] in CHECKS


def test_redis_keeps_messages(services):
    cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in cmd
    assert "--maxmemory-policy noeviction" in cmd
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_postgres_health_check(services):
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_vllm_serves_the_chosen_model_with_prefix_caching_and_no_thinking(services):
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    cmd = vllm["command"]
    assert cmd[cmd.index("--model") + 1].startswith("${VLLM_MODEL:-")
    assert "--enable-prefix-caching" in cmd
    kwargs = cmd[cmd.index("--default-chat-template-kwargs") + 1]
    assert yaml.safe_load(kwargs) == {"enable_thinking": False}
    assert "/v1/models" in " ".join(vllm["healthcheck"]["test"])
    served = cmd[cmd.index("--served-model-name") + 1]
    assert served == services["api"]["environment"]["LORE_LLM__MODEL"]  # the name Lore sends


def test_env_example_lists_every_interpolated_variable():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(INTERPOLATION.findall(text))
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"
    # Uncommented LORE_* lines would also change a local `lore` run from this folder.
    active_lore = re.findall(r"^(LORE_[A-Z0-9_]*)=", example, re.M)
    assert active_lore == []
    known = {s.env for s in iter_settings()}
    compose_only = {v for v in used if not v.startswith("LORE_")}
    assert not any(v.startswith("LORE_") for v in compose_only)
    assert {v for v in used if v.startswith("LORE_")} <= known


def test_dockerfile_runs_lore_as_an_unprivileged_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^USER lore$", dockerfile, re.M)
    assert 'ENTRYPOINT ["tini", "--", "lore"]' in dockerfile
