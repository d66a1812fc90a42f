"""docker-compose.yml and the Dockerfile keep their promises (`docker-compose config -q` in CI
checks the syntax; hadolint in `make lint` the Dockerfile's practice)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
APP = ("web", "worker", "beat")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_one_image_built_once_and_migrated_before_the_app_starts() -> None:
    services = compose()["services"]
    built = [name for name, s in services.items() if "build" in s]
    assert built == ["migrate"]
    assert services["migrate"]["command"] == ["digest", "init"]
    assert services["migrate"]["restart"] == "no"
    for name in APP:
        service = services[name]
        assert service["image"] == services["migrate"]["image"]
        assert service["pull_policy"] == "never"
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["restart"] == "unless-stopped"


def test_ports_bound_to_loopback_healthchecks_and_no_default_secret() -> None:
    doc = compose()
    services = doc["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        if name != "migrate":
            assert service.get("restart") == "unless-stopped", name
    for name in ("postgres", "redis", "worker", "mailpit"):
        assert services[name]["healthcheck"]["test"], name
    assert {"mailpit", "flower"} <= set(services)
    secret = services["web"]["environment"]["DIGEST_SECRET_KEY"]
    assert re.fullmatch(r"\$\{DIGEST_SECRET_KEY:\?[^}]+\}", secret), secret


def test_the_runtime_stage_is_slim_non_root_and_checks_health() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2
    build, runtime = stages
    assert "--require-hashes" in build and "uv export --frozen" in build
    assert runtime.startswith("python:3.11-slim")
    assert re.search(r"^USER 10001", runtime, re.M)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    for tool in ("gcc", "build-essential", "apt-get install"):
        assert tool not in runtime
