"""Docs match the code: every setting is documented, and the README shows the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
