"""deploy/ says what the code does: the variables it names are settings Spor reads, the
environment file lists every setting, its command lines parse with spor's own parser, the
proxy lets Spor's body limit answer, and service managers wait out Spor's graceful shutdown."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from lrs.cli import GRACEFUL_SHUTDOWN_SECONDS, build_parser
from lrs.settings import Settings
from projections import models

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
SETTINGS = {f"SPOR_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name != "oidc"}
# the one variable of uvicorn's that deploy/ names (client addresses behind a proxy)
UVICORN = {"FORWARDED_ALLOW_IPS"}


def _deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def test_the_deploy_files_exist() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in _deploy_files()}
    assert {"README.md", "Containerfile", "spor.env.example", "nginx/spor.conf", "systemd/spor.service",
            "systemd/spor-projections@.service"} <= names


@pytest.mark.parametrize("path", _deploy_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_variable_named_is_one_spor_reads(path: Path) -> None:
    named = set(re.findall(r"\bSPOR_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    unknown = {v for v in named if v not in SETTINGS and not v.startswith("SPOR_OIDC_")}
    assert not unknown, f"{path.name} names variables Spor does not read: {sorted(unknown)}"


def test_the_environment_file_lists_every_setting_with_its_default() -> None:
    lines = (DEPLOY / "spor.env.example").read_text().splitlines()
    assigned = dict(re.match(r"#? ?([A-Z_][A-Z0-9_]*)=(.*)", ln).groups()  # type: ignore[union-attr]
                    for ln in lines if re.match(r"#? ?[A-Z_][A-Z0-9_]*=", ln))
    assert SETTINGS - set(assigned) == set(), "settings missing from spor.env.example"
    assert set(assigned) - SETTINGS - UVICORN == {"SPOR_OIDC_ISSUER"}
    defaults = Settings()
    # a commented line shows the default; an integer setting's default exactly
    for ln in lines:
        m = re.match(r"# (SPOR_[A-Z0-9_]+)=(\d+)$", ln)
        if m:
            assert str(getattr(defaults, m.group(1)[5:].lower())) == m.group(2), ln


def test_the_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    assert {v for v in SETTINGS if f"`{v}`" not in readme} == set()
    assert "`SPOR_OIDC_*`" in readme and "`FORWARDED_ALLOW_IPS`" in readme


def _spor_args(command: str) -> list[str]:
    """The arguments after the spor executable in a unit's ExecStart or the image's command."""
    words = shlex.split(command.replace("%i", "all"))
    assert words[0].endswith("/spor") or words[0] == "spor", command
    return words[1:]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_each_unit_runs_a_command_spor_accepts_and_waits_out_its_shutdown(unit: Path) -> None:
    text = unit.read_text()
    (command,) = re.findall(r"^ExecStart=(.+)$", text, flags=re.M)
    args = build_parser().parse_args(_spor_args(command))
    assert args.command in ("serve", "projections")
    assert "EnvironmentFile=/etc/spor/spor.env" in text
    assert re.search(r"^KillSignal=SIGTERM$", text, flags=re.M)
    (stop,) = re.findall(r"^TimeoutStopSec=(\d+)$", text, flags=re.M)
    assert int(stop) > GRACEFUL_SHUTDOWN_SECONDS
    assert re.search(r"^User=spor$", text, flags=re.M)


def test_the_projection_unit_is_one_worker_per_read_model_name() -> None:
    """The instance names the unit's comment offers are the read models there are (and all)."""
    text = (DEPLOY / "systemd" / "spor-projections@.service").read_text()
    (command,) = re.findall(r"^ExecStart=(.+)$", text, flags=re.M)
    offered = set(re.findall(r"@(\w+)", text))
    assert offered == {*models.ALL, "all"}
    for name in offered:
        args = build_parser().parse_args(_spor_args(command.replace("%i", name)))
        assert (args.command, args.action, args.name) == ("projections", "run", name)


def test_the_image_runs_spor_serve_as_a_user_on_all_addresses() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, flags=re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.M)
    assert entry and cmd
    words = json.loads(entry.group(1)) + json.loads(cmd.group(1))
    assert build_parser().parse_args(_spor_args(" ".join(words))).command == "serve"
    assert re.search(r"^USER spor$", text, flags=re.M)
    assert "SPOR_HOST=0.0.0.0" in text
    assert "/health" in text


def test_the_proxy_lets_spors_own_body_limit_answer() -> None:
    """nginx's limit at or above SPOR_MAX_BODY_BYTES: a body over Spor's limit reaches Spor, whose
    413 names the limit; below it, nginx would refuse bodies Spor accepts."""
    text = (DEPLOY / "nginx" / "spor.conf").read_text()
    (size,) = re.findall(r"client_max_body_size (\d+)m;", text)
    limit = Settings().max_body_bytes
    assert limit <= int(size) * 1024 * 1024 <= limit + 2 * 1024 * 1024
    # an HTTP/1.1 upstream without a Connection header wherever nginx passes requests on, or the
    # upstream's keepalive connections are not reused
    passes = text.count("proxy_pass http://spor;")
    assert passes == text.count("proxy_http_version 1.1;") == text.count('proxy_set_header Connection "";') >= 1


def test_the_proxy_closes_an_idle_upstream_connection_before_spor_does() -> None:
    """nginx keeps its pooled connections to Spor keepalive_timeout (60 s unless set); Spor one
    idle for SPOR_KEEP_ALIVE_SECONDS. With uvicorn's 5 s, nginx could reuse a connection Spor
    was closing: a 502, and a POST not sent again."""
    text = (DEPLOY / "nginx" / "spor.conf").read_text()
    upstream = text[text.index("upstream spor {"):]
    upstream = upstream[:upstream.index("}")]
    (seconds,) = re.findall(r"keepalive_timeout (\d+)s;", upstream)
    assert "keepalive 32;" in upstream and int(seconds) < Settings().keep_alive_seconds
