"""The ``lore`` command line as a whole: version, shell completion, reports on stdout, data-path options."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lore.cli import app
from lore.cli.common import existing_file, existing_folder

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    env.update(LORE_PATHS__DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), COLUMNS="200")
    return env


def _lore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lore.cli", *args], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
        timeout=120,
    )


def _functions(typer_app: typer.Typer, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command function registered on ``typer_app`` and its groups, by its words after ``lore``."""
    for info in typer_app.registered_commands:
        assert info.callback is not None
        yield (*prefix, info.name or info.callback.__name__), info.callback
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None
        assert group.name
        yield from _functions(group.typer_instance, (*prefix, group.name))


def test_version_is_the_package_version(tmp_path: Path) -> None:
    done = _lore(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"lore {version('lore')}\n"
    assert done.stderr == ""


def test_shell_completion_completes_commands_and_subcommands() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["--show-completion", "bash"], prog_name="lore")
    assert shown.exit_code == 0, shown.output
    assert "_LORE_COMPLETE=complete_bash" in shown.stdout

    def complete(words: str) -> list[str]:
        env = {"_LORE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        result = runner.invoke(app, [], prog_name="lore", env=env)
        assert result.exit_code == 0, result.output
        return result.stdout.split()

    assert complete("lore dis") == ["disputes"]
    assert complete("lore keys ") == ["create", "list", "revoke"]
    assert "--scope" in complete("lore keys create --")


def test_lint_prints_its_report_on_stdout(tmp_path: Path) -> None:
    assert _lore(tmp_path, "migrate").returncode == 0
    empty = _lore(tmp_path, "lint")  # makes the repository
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == "0 error(s), 0 warning(s)\n"
    repo = tmp_path / "data" / "wiki"
    page = repo / "wiki" / "systems" / "foo.md"
    page.parent.mkdir(parents=True)
    page.write_text("---\ntitle: Foo\ntype: systems\n---\n# Foo\n\nSee [[Nowhere at all]] and [b]this[/b], "
                    "a line long enough that a console eighty columns wide would have wrapped it twice over.\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "wiki"], check=True)
    subprocess.run([*git, "commit", "-qm", "a page by hand"], check=True)

    done = _lore(tmp_path, "lint")
    assert done.returncode == 1  # the missing index is an error
    lines = done.stdout.splitlines()
    assert "warning broken-link wiki/systems/foo.md: [[Nowhere at all]] names no page" in lines
    assert "error no-index wiki/index.md: the wiki has pages but no index" in lines
    assert lines[-1] == f"1 error(s), {len(lines) - 2} warning(s)"
    assert "error(s)" not in done.stderr

    as_json = _lore(tmp_path, "lint", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert (report["errors"], report["warnings"]) == (1, len(lines) - 2)


@pytest.mark.parametrize(
    ("args", "option", "default"),
    [
        (["bench", "ingest"], "--docs", True),
        (["bench", "corpus"], "--set", True),
        (["bench", "chaos", "--docs", "nowhere"], "--docs", False),
        (["eval", "qa"], "--docs", True),
        (["eval", "qa", "--docs", "."], "--questions", True),
        (["eval", "conflicts", "--set", "nowhere.jsonl"], "--set", False),
        (["eval", "grounding"], "--data", True),
        (["eval", "tune-retrieval", "--set", ".", "--set", "nowhere"], "--set", False),
    ],
)
def test_a_missing_data_path_names_the_option_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], option: str, default: bool
) -> None:
    monkeypatch.chdir(tmp_path)  # ../shared is not beside this folder
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.replace("│", " ").split())
    kind = "FILE" if option == "--questions" or args[:2] == ["eval", "conflicts"] else "FOLDER"
    assert f"Invalid value for '{option}'" in message
    assert f"pass {option} {kind}" in message
    assert ("(the default, relative to" in message) is default
    assert result.stdout == ""


def test_data_path_defaults_exist_beside_the_project() -> None:
    checked = []
    for words, function in _functions(app):
        for name, param in inspect.signature(function).parameters.items():
            option = param.default
            if getattr(option, "callback", None) not in (existing_folder, existing_file):
                continue
            defaults = option.default if isinstance(option.default, list) else [option.default]
            for path in defaults:
                full = ROOT / path
                assert full.is_dir() if option.callback is existing_folder else full.is_file(), (words, path)
                checked.append((words, name))
    assert len(checked) >= 8, checked
