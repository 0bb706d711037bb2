"""`lore eval grounding` on a small draw of the shared data: its keys, and that the matcher holds."""

from __future__ import annotations

import random

from bench.eval_grounding import ALTERED, NEAR, altered_copy, near_copy, run


def test_a_small_draw_keeps_near_verbatim_copies_and_refuses_altered_ones(shared_data):
    result = run(shared_data, n=200, seed=3)
    assert result["spans"] == 200
    assert set(result["by_kind"]) == {*NEAR, *ALTERED}
    assert result["near_verbatim_acceptance"] >= 0.98
    assert result["altered_acceptance"] <= 0.01
    assert result["baseline"]["near_verbatim_acceptance"] < result["near_verbatim_acceptance"]


def test_the_copies_change_what_they_say_they_change():
    rng = random.Random(1)
    span = "As of the census of 2010 , there were 3,559 people in Broken Bow ."
    assert near_copy("detokenized", span, rng) == "As of the census of 2010, there were 3,559 people in Broken Bow."
    dropped = near_copy("dropped_word", span, rng)
    assert dropped is not None
    assert len(dropped.split()) == len(span.split()) - 1
    changed = altered_copy("changed_number", span, span, [], rng)
    assert changed is not None
    assert changed != span
    assert "census" in changed
    assert altered_copy("negation", "The pump was not restarted by the team .", "", [], rng) == (
        "The pump was restarted by the team .")
    renamed = altered_copy("changed_name", span, span, ["Omaha"], rng)
    assert renamed in (span.replace("Broken", "Omaha"), span.replace("Bow", "Omaha"))
