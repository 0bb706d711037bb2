"""A chunk whose answer does not fit the output limit is read in halves, not given up on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from store.models import Claim, Source
from synth.client import Sampling
from synth.text import halve
from tests.synth.conftest import make_wiki

NAMES = ("Alpha service", "Beta service", "Gamma service", "Delta service")
DOC = "# Services\n\n" + "\n\n".join(
    f"The {n} listens on port {8000 + i}. The {n} is owned by Team {n.split()[0]}ops. It handles requests "
    "from the public website and from the mobile applications, every day of the week."
    for i, n in enumerate(NAMES)
)


def _ingest(tmp_path, fake_llm, max_tokens: int) -> tuple[Source, list[Claim]]:
    doc = tmp_path / "services.md"
    doc.write_text(DOC)
    fake_llm.configure(honour_max_tokens=True)
    wiki = make_wiki(tmp_path, fake_llm)
    wiki.deps.client.sampling = Sampling(max_tokens=max_tokens)
    (sid,) = wiki.ingest(doc)
    wiki.run()
    with wiki.deps.session_factory() as s:
        return s.get(Source, sid), list(s.scalars(select(Claim)))


def test_a_cut_answer_is_asked_again_for_each_half(tmp_path, fake_llm):
    src, claims = _ingest(tmp_path, fake_llm, max_tokens=700)  # the whole answer needs about 1,100
    assert (src.status, src.error) == ("done", None)
    assert fake_llm.stats()["by_stage"]["extract"] == 3  # the whole (cut), then each half
    for i, n in enumerate(NAMES):  # claims from both halves
        assert any(f"The {n} listens on port {8000 + i}" in c.quote for c in claims), n


def test_a_part_too_small_to_halve_fails_with_the_reason(tmp_path, fake_llm):
    src, claims = _ingest(tmp_path, fake_llm, max_tokens=120)
    assert src.status == "failed"
    assert "cut off" in src.error
    assert claims == []


@given(st.text(alphabet=st.sampled_from("ab \n."), max_size=300))
def test_halves_keep_every_character(text):
    parts = halve(text)
    assert "".join(parts) == text
    assert 1 <= len(parts) <= 2
    if len(parts) == 2:
        assert all(parts)


@pytest.mark.parametrize("text", ["one\n\ntwo three\n\nfour", "a line\nanother line\nthird", "no breaks here at all"])
def test_halves_cut_at_the_widest_break_near_the_middle(text):
    first, second = halve(text)
    assert first + second == text
    assert first[-1] in "\n "
