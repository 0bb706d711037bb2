"""Grounding: quotes must really occur in the source; spans point at the original text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth import slots
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


# --- tolerant locate --------------------------------------------------------------------------------

from hypothesis import HealthCheck, assume, settings  # noqa: E402

from synth.grounding import locate, value_in  # noqa: E402

PTB = ("As of the census [ 13 ] of 2010 , there were 3,559 people , 1,575 households , and 909 families "
       "residing in the city . The time zone is Central ( UTC − 6 ) . He said `` it was n't planned '' .")


@pytest.mark.parametrize(("quote", "how"), [
    ("As of the census of 2010, there were 3,559 people, 1,575 households", "tokens"),  # detokenized
    ("there were 3,559 people, 1,575 households and 909 families", "tokens"),
    ("The time zone is Central (UTC -6).", "tokens"),  # U+2212 and spacing
    ('He said "it wasn\'t planned".', "tokens"),  # PTB quotes and n't
    ("there were 3,559 people, 1,575 households, 909 families residing", "fuzzy"),  # a dropped word
    ("As of the census ... there were 3,559 people", "elided"),
    ("As of census of 2010, there were 3,559 people", "fuzzy"),  # a dropped stop word
])
def test_near_verbatim_copies_are_located_with_the_sources_span(quote, how):
    span = SourceText(PTB).find(quote)
    assert span is not None, quote
    assert span.how == how
    assert locate(PTB, quote) == (span.start, span.end)
    assert PTB[span.start : span.end].split()[0].casefold() == quote.split()[0].casefold()


@pytest.mark.parametrize("quote", [
    "As of the census of 2010, there were 3,560 people",  # a changed number
    "As of the census of 2011, there were 3,559 people",
    "there were 3,559 people, 1,575 households and 909 cities",  # a changed word
    "He said it was planned",  # a dropped negation
    "there were not 3,559 people",  # an inserted negation
    "there were people, 1,575 households",  # a dropped number
    "The time zone is Eastern (UTC -6)",  # a changed name
])
def test_changed_numbers_names_and_negations_are_not_located(quote):
    assert locate(PTB, quote) is None


def test_accents_fold_and_values_are_found_inside_spans():
    text = "The club plays in Dębica, Poland, since 1947."
    assert locate(text, "The club plays in Debica, Poland") is not None
    assert value_in("there were 3,559 people , 1,575", "3,559 people")
    assert value_in("He played in March of 2023", "March 2023")  # one token between
    assert not value_in("there were 3,559 people", "3,560")


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor"]
sentence = st.lists(st.sampled_from(WORDS) | st.integers(10, 9999).map(str), min_size=8, max_size=20, unique=True)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # the machine is shared
@given(sentence, st.integers(0, 100), st.sampled_from(["spacing", "case", "drop", "ellipsis", "punct"]))
def test_property_near_verbatim_copies_are_found(words, seed, change):
    text = " ".join(words) + "."
    quote_words = list(words)
    if change == "spacing":
        quote = "  ".join(quote_words)
    elif change == "case":
        quote = " ".join(w.upper() for w in quote_words)
    elif change == "drop":
        droppable = [i for i, w in enumerate(quote_words[1:-1], start=1) if not w.isdigit()]
        assume(droppable)
        del quote_words[droppable[seed % len(droppable)]]
        quote = " ".join(quote_words)
    elif change == "ellipsis":
        cut = 2 + seed % (len(quote_words) - 4)
        quote = " ".join(quote_words[:cut]) + " ... " + " ".join(quote_words[cut + 1 :])
    else:
        quote = ", ".join(quote_words) + "!"
    span = SourceText(text).find(quote)
    assert span is not None, (text, quote)
    assert text[span.start : span.end].startswith(words[0])


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(sentence, st.integers(0, 100), st.sampled_from(["number", "name", "negation"]))
def test_property_a_changed_number_name_or_negation_is_not_found(words, seed, change):
    text = " ".join(words) + "."
    quote_words = list(words)
    if change == "number":
        numbers = [i for i, w in enumerate(quote_words) if w.isdigit()]
        assume(numbers)
        i = numbers[seed % len(numbers)]
        quote_words[i] = str(int(quote_words[i]) + 1)
        assume(quote_words[i] not in words)
    elif change == "name":
        names = [i for i, w in enumerate(quote_words) if not w.isdigit()]
        assume(names)
        i = names[seed % len(names)]
        quote_words[i] = "zulu"
    else:
        quote_words.insert(1 + seed % (len(quote_words) - 1), "not")
    assert SourceText(text).find(" ".join(quote_words)) is None


def test_grounding_counts_rejections_by_reason_and_keeps_a_claim_whose_value_is_not_in_its_span():
    from synth.flows.extract import ground
    from synth.prompts.extract import Extraction

    doc = "# Broken Bow\n\nAs of the census of 2010, there were 3,559 people in Broken Bow.\n"
    answer = Extraction.model_validate({
        "title": "Broken Bow", "entities": [{"name": "Broken Bow", "type": "places"}], "relations": [],
        "summary": "s", "claims": [
            {"entity": "Broken Bow", "text": "Broken Bow had 3,559 people.", "attribute": "population",
             "value": "3,559 people", "as_of": "2010", "quote": "there were 3,559 people"},
            {"entity": "Broken Bow", "text": "Broken Bow had 4,000 people.", "attribute": "population",
             "value": "4,000", "quote": "As of the census of 2010"},  # value not in the span
            {"entity": "Broken Bow", "text": "It is big.", "quote": "a very big town indeed"},  # no such quote
            {"entity": "Omaha", "text": "Omaha is near.", "quote": "there were 3,559 people"},  # not in the text
            {"entity": "the census", "text": "The census was in 2010.", "quote": "census of 2010"},  # unlisted
        ],
    })
    found = ground(doc, [(answer, "")])
    assert found.rejections == {"quote": 1, "value": 1, "entity": 1}
    kept = {g.claim.text: g for g in found.claims}
    assert kept["Broken Bow had 3,559 people."].attr_key == "population"
    assert kept["Broken Bow had 3,559 people."].value == slots.Value("3559 people", "number")
    assert kept["Broken Bow had 4,000 people."].attr_key is None  # kept without its unproven slot
    assert kept["Broken Bow had 4,000 people."].value is None
    # an entity the model did not list but the source names is added, as "other"; one it does not name is not
    assert found.entities["the census"].type == "other"
    assert "omaha" not in found.entities
