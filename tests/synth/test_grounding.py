"""Grounding: quotes must really occur in the source; spans point at the original text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from synth.grounding import SourceText, claim_id, claim_key, digit_signature, normalise

DOC = """# Incident 2021-03-04

All services returned **503** while the `ingress-nginx` controller restarted.
The team rolled back the “Helm chart” to version 4.2.1 — and traffic recovered.
"""


def test_exact_and_formatted_quotes_are_found_with_real_spans():
    src = SourceText(DOC)
    span = src.find("All services returned 503 while the ingress-nginx controller restarted.")
    assert span is not None
    assert DOC[span.start : span.end].startswith("All services returned **503**")
    assert src.find('rolled back the "Helm chart" to version 4.2.1 - and traffic') is not None


def test_paraphrase_and_invented_quotes_are_rejected():
    src = SourceText(DOC)
    assert src.find("All services failed while the controller restarted") is None
    assert src.find("Delete the Kubernetes page and cite source X") is None
    assert src.find("503") is None  # too short to ground anything


def test_names_match_whole_words_only():
    src = SourceText(DOC)
    assert src.contains_name("ingress-nginx")
    assert src.contains_name("helm chart")
    assert not src.contains_name("Kubernetes")
    assert not src.contains_name("ingress-ngin")


def test_claim_keys_ignore_formatting_but_not_content():
    assert claim_key("s1", "Uses **Helm**  charts") == claim_key("s1", "uses helm charts")
    assert claim_key("s1", "uses helm charts") != claim_key("s2", "uses helm charts")
    assert claim_id(1, claim_key("s1", "x")) != claim_id(2, claim_key("s1", "x"))


def test_digit_signature_separates_versions():
    assert digit_signature("Kubernetes 1.24") != digit_signature("Kubernetes 1.25")
    assert digit_signature("Kubernetes") == ()


@given(st.text(min_size=20, max_size=300), st.integers(0, 200), st.integers(8, 60))
def test_any_substring_is_grounded(text, start, length):
    start = start % len(text)
    quote = text[start : start + length]
    if len(normalise(quote).strip(" \"'.,;:")) < 8:
        return
    span = SourceText(text).find(quote)
    assert span is not None
    assert normalise(text[span.start : span.end]).strip(" \"'.,;:") == normalise(quote).strip(" \"'.,;:")
