"""Crash points: parsing, scopes, the n-th hit, and the once-per-folder marker (real SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lore.config import ConfigError, load_settings
from store.faults import Fault, arm, armed, crash_point, disarm, fault_scope, parse_faults

ROOT = Path(__file__).resolve().parents[2]


def run_points(spec: str, markers: Path, steps: list[tuple[str | None, str]]) -> subprocess.CompletedProcess[str]:
    """A child process that arms ``spec`` and hits ``(scope, point)`` steps in order, printing each."""
    code = textwrap.dedent(
        f"""
        import contextlib
        from pathlib import Path
        from store.faults import arm, crash_point, fault_scope

        arm({spec!r}, Path({str(markers)!r}))
        for scope, point in {steps!r}:
            print("reached", scope, point, flush=True)
            with fault_scope(scope) if scope else contextlib.nullcontext():
                crash_point(point)
            print("passed", scope, point, flush=True)
        """
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_parse_faults_reads_point_scope_and_hit():
    assert parse_faults("") == ()
    assert parse_faults(" after_model@extract , before_ref:2,after_ref@render:3, before_ref:2") == (
        Fault("after_model", "extract", 1),
        Fault("before_ref", None, 2),
        Fault("after_ref", "render", 3),
    )
    assert Fault("after_ref", "render", 3).name == "after_ref@render:3"
    assert Fault("after_ref", "render", 3).marker_name == "after_ref-render-3.fired"
    assert Fault("catalog_write").name == "catalog_write"


@pytest.mark.parametrize("spec", ["nowhere", "after_ref@", "after_ref:0", "after_ref@Render", "before_ref;x"])
def test_parse_faults_refuses_unknown_points_and_bad_syntax(spec):
    with pytest.raises(ValueError, match=r"crash point|point\[@scope\]"):
        parse_faults(spec)


def test_an_unarmed_or_unmatched_point_does_nothing(tmp_path):
    disarm()
    crash_point("after_ref")  # unarmed: returns
    arm("after_ref@render", tmp_path)
    try:
        assert armed() == (Fault("after_ref", "render"),)
        crash_point("after_ref")  # no scope: the fault is limited to render work
        with fault_scope("source_page"):
            crash_point("after_ref")
        crash_point("before_ref")
    finally:
        disarm()
    assert not (tmp_path / "after_ref-render.fired").exists()


def test_an_armed_point_kills_with_sigkill_once_per_marker_folder(tmp_path):
    steps = [(None, "after_ref"), ("source_page", "after_ref"), ("render", "before_ref"), ("render", "after_ref"),
             ("render", "catalog_write")]
    first = run_points("after_ref@render", tmp_path, steps)
    assert first.returncode == -signal.SIGKILL
    assert first.stdout.splitlines()[-1] == "reached render after_ref"  # killed at the point, not after
    assert "crash point after_ref@render fired" in first.stderr
    marker = json.loads((tmp_path / "after_ref-render.fired").read_text())
    assert (marker["point"], marker["scope"]) == ("after_ref", "render")
    assert marker["pid"] > 0

    # A fresh process with the same settings and folder passes the point: the marker says it fired.
    second = run_points("after_ref@render", tmp_path, steps)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "passed render catalog_write"


def test_the_nth_hit_fires_and_a_scopeless_fault_fires_anywhere(tmp_path):
    steps = [("extract", "before_ref"), (None, "before_ref"), ("catalog", "before_ref"), (None, "after_ref")]
    proc = run_points("before_ref:3", tmp_path, steps)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.count("passed") == 2
    assert proc.stdout.splitlines()[-1] == "reached catalog before_ref"
    assert json.loads((tmp_path / "before_ref-3.fired").read_text())["hit"] == 3


def test_settings_validate_faults_and_refuse_them_in_production(monkeypatch):
    for key in [k for k in os.environ if k.startswith("LORE_")]:
        monkeypatch.delenv(key)
    assert load_settings(faults="after_model@extract").faults == "after_model@extract"
    with pytest.raises(ConfigError, match="LORE_FAULTS"):
        load_settings(faults="after_everything")
    with pytest.raises(ConfigError, match="refused in production"):
        load_settings(env="production", faults="after_ref", llm={"base_url": "http://gpu:8000/v1"})
