"""Docs match the code: every setting and every command is documented, and the README shows the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from lore.cli import app
from lore.config import ConfigError, load_settings
from lore.settings_doc import iter_settings, settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_lists_every_setting():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    m = re.search(r"<!-- settings-table -->\n(.*?)<!-- /settings-table -->", doc, re.S)
    assert m, "docs/configuration.md lost its settings-table markers"
    for s in iter_settings():
        assert f"`{s.env}`" in m.group(1), f"{s.env} is not documented in docs/configuration.md"
    assert m.group(1) == settings_table(), "settings table is stale: run `lore config docs`"


MENTION = re.compile(r"`lore ([a-z][a-z-]*)((?: [a-z][a-z-]*(?:\|[a-z][a-z-]*)*)?)")


def _command_words(typer_app: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    words = [(*prefix, info.name) for info in typer_app.registered_commands if info.name]
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None
        assert group.name
        words += _command_words(group.typer_instance, (*prefix, group.name))
    return words


def test_docs_name_every_command():
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert docs
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *docs])
    named: set[tuple[str, ...]] = set()
    for m in MENTION.finditer(text):  # `lore keys create NAME`, `lore disputes list|show|resolve`
        named.add((m.group(1),))
        if subcommands := m.group(2).strip():
            named.update((m.group(1), sub) for sub in subcommands.split("|"))
    commands = _command_words(app)
    assert len(commands) > 30
    assert [" ".join(c) for c in commands if c not in named] == [], "commands no doc names"
    assert "`lore --version`" in text
    assert "--install-completion" in text


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "make run" in first_screen
    assert "make test" in first_screen
    assert "curl" in first_screen


def test_invalid_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv("LORE_API__PORT", "not-a-port")
    with pytest.raises(ConfigError, match="LORE_API__PORT"):
        load_settings()


def test_time_limits_must_fit_visibility_timeout(monkeypatch):
    monkeypatch.setenv("LORE_WORKER__TIME_LIMIT_S", "4000")
    with pytest.raises(ConfigError, match="visibility_timeout"):
        load_settings()
