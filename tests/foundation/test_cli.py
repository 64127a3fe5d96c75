"""The `finfeast` command: real help, one-line errors, and no Feast import for help/arg errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finfeast.cli import build_parser, main

COMMANDS = {"run", "ingest", "features", "apply", "materialize", "stream", "env"}


def _finfeast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finfeast.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_help_lists_every_command() -> None:
    proc = _finfeast("--help")
    assert proc.returncode == 0
    for command in COMMANDS:
        assert f"    {command} " in proc.stdout or f"    {command}\n" in proc.stdout, command


def test_help_does_not_import_feast_or_pandas() -> None:
    code = (
        "import sys\n"
        "from finfeast.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('feast', 'pandas', 'confluent_kafka', 'river') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_unknown_command_is_a_one_line_error() -> None:
    proc = _finfeast("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice: 'frobnicate'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_profile_variable_is_a_one_line_error() -> None:
    proc = _finfeast("env", env={"FINFEAST_PROFILE": "staging"})
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["finfeast: error: unknown profile 'staging': choose one of local, prod"]


def test_bad_integer_setting_is_a_one_line_error() -> None:
    proc = _finfeast("env", env={"FINFEAST_PG_PORT": "five"})
    assert proc.returncode == 2
    assert "FINFEAST_PG_PORT must be an integer" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_exports_resolved_settings(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["FINFEAST_WORKDIR"] = str(tmp_path)
    try:
        assert main(["--profile", "prod", "env"]) == 0
    finally:
        del os.environ["FINFEAST_WORKDIR"]
    out = capsys.readouterr().out
    assert "export FINFEAST_PROFILE=prod" in out
    assert f"export FINFEAST_OFFLINE_DIR={tmp_path}/prod/offline" in out
    assert "export FINFEAST_REDIS_CONN=127.0.0.1:6379,db=0" in out


def test_profile_flag_accepted_after_the_command() -> None:
    args = build_parser().parse_args(["apply", "--profile", "prod"])
    assert args.profile == "prod"
