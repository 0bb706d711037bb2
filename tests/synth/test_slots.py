"""Fact-slot normalizers: attribute keys, values and dates (pure code, fixture tables)."""

from __future__ import annotations

import pytest

from synth import slots

ATTRIBUTES = [
    ("born", "birth date"),
    ("Date of Birth", "birth date"),
    ("birth year", "birth date"),
    ("place of birth", "birth place"),
    ("was founded", "founding date"),
    ("Established", "founding date"),
    ("year established", "founding date"),
    ("founded by", "founder"),
    ("caused by", "root cause"),
    ("Root causes", "root cause"),
    ("population in 2010", "population"),
    ("released", "release date"),
    ("Status", "status"),
    ("owned by", "owner"),
    ("broker count", "broker count"),
    ("brokers", "broker"),
    ("the number of nodes", "number node"),
]


@pytest.mark.parametrize(("phrase", "key"), ATTRIBUTES)
def test_attribute_phrases_fold_to_one_key(phrase, key):
    assert slots.attribute_key(phrase) == key


def test_empty_attributes_have_no_key():
    assert slots.attribute_key(None) is None
    assert slots.attribute_key("  ") is None
    assert slots.attribute_key("the of") is None


VALUES = [
    ("August 1, 1983", "1983-08-01", "date"),
    ("1 August 1983", "1983-08-01", "date"),
    ("1983-08-01", "1983-08-01", "date"),
    ("March 2023", "2023-03", "date"),
    ("Aug. 2023", "2023-08", "date"),
    ("1983", "1983", "date"),
    ("3,559 people", "3559 people", "number"),
    ("3559", "3559", "number"),
    ("10,000 people", "10000 people", "number"),
    ("1.2 million", "1200000", "number"),
    ("about 40 %", "40 %", "number"),
    ("American football", "american football", "name"),
    ("the Dallas Cowboys (NFL)", "dallas cowboys", "name"),
    ("Dębica", "debica", "name"),
    ("an expired TLS certificate", "expired tls certificate", "text"),
]


@pytest.mark.parametrize(("raw", "norm", "kind"), VALUES)
def test_values_normalize(raw, norm, kind):
    value = slots.normalize_value(raw)
    assert value == slots.Value(norm, kind)


def test_a_year_shaped_number_of_a_count_is_a_number_not_a_date():
    assert slots.normalize_value("2,260", "population") == slots.Value("2260", "number")
    assert slots.normalize_value("1888", "birth date").type == "date"


def test_same_value_and_hard_differences():
    v = slots.normalize_value
    assert slots.same_value(v("3,559 people"), v("3559"))
    assert slots.same_value(v("1983"), v("August 1, 1983"))  # a date equals a more precise one inside it
    assert not slots.same_value(v("1983"), v("1985"))
    assert not slots.same_value(v("3,559 people"), v("10,000 people"))
    assert slots.same_value(v("The Killers"), v("the killers"))
    assert slots.hard_differ(v("1983"), v("1985"))
    assert slots.hard_differ(v("3,559"), v("3,560"))
    assert not slots.hard_differ(v("American football"), v("ice hockey"))  # names differ, but softly
    assert not slots.same_value(None, v("x"))


def test_fixed_and_changing_attributes():
    assert not slots.can_change("birth date")
    assert not slots.can_change("root cause")
    assert slots.can_change("population")
    assert slots.can_change("status")
    assert not slots.can_change(None)


def test_a_value_in_another_format_is_found_in_its_span():
    assert slots.value_matches_span("(born August 1, 1983)", slots.normalize_value("1983-08-01"))
    assert slots.value_matches_span("there were 3,559 people", slots.normalize_value("3559"))
    assert not slots.value_matches_span("there were 3,559 people", slots.normalize_value("3560"))
    assert not slots.value_matches_span("anything", slots.normalize_value("Team Atlas"))


def test_dates_in_text():
    assert slots.normalize_date("As of the census of 2010") == "2010"
    assert slots.normalize_date("on 12 March 2021 at noon") == "2021-03-12"
    assert slots.normalize_date("no date here") is None
    assert slots.normalize_date(None) is None
