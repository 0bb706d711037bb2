from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wiki.slug import MIN_LEN, slugify, unique_slug

SAFE = re.compile(r"_?[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Kubernetes", "kubernetes"),
        ("Kubernetes 1.24", "kubernetes-1.24"),
        ("  Apache   Kafka!! ", "apache-kafka"),
        ("Café Straße", "cafe-strasse"),
        ("C++", "c-plus-plus"),
        ("C#", "c-sharp"),
        ("Python 3.11.", "python-3.11"),
        ("...hidden", "hidden"),
        ("CON", "_con"),
        ("com1.5", "_com1.5"),
    ],
)
def test_known_slugs(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Kubernetes 1.24", "Kubernetes 1.25"),
        ("Kubernetes 1.24", "Kubernetes 12.4"),
        ("ADR 021", "ADR 036"),
        ("C", "C++"),
        ("Tokyo 東京", "Tokyo 大阪"),
        ("日本語", "中文"),
        ("x" * 100 + "a", "x" * 100 + "b"),
    ],
)
def test_different_names_stay_distinct(a: str, b: str) -> None:
    assert slugify(a) != slugify(b)


def test_never_empty_falls_back_to_a_hash() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}", slugify("日本語"))
    assert slugify("") != ""
    assert slugify("!!!") != ""
    assert slugify("!!!") != slugify("???")


def test_max_len_is_enforced() -> None:
    assert len(slugify("word " * 100, max_len=30)) <= 30
    with pytest.raises(ValueError, match="max_len"):
        slugify("x", max_len=MIN_LEN - 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.integers(min_value=MIN_LEN, max_value=100))
def test_slug_is_safe_stable_and_idempotent(name: str, max_len: int) -> None:
    slug = slugify(name, max_len=max_len)
    assert SAFE.fullmatch(slug), slug
    assert len(slug) <= max_len
    assert slug.lstrip("_").partition(".")[0] not in RESERVED or slug.startswith("_")
    assert slugify(name, max_len=max_len) == slug
    assert slugify(slug, max_len=max_len) == slug


def test_unique_slug() -> None:
    assert unique_slug("kafka", set()) == "kafka"
    assert unique_slug("kafka", {"kafka"}) == "kafka-2"
    assert unique_slug("kafka", {"kafka", "kafka-2"}) == "kafka-3"
    long = "a" * 80
    out = unique_slug(long, {long}, max_len=80)
    assert out.endswith("-2")
    assert len(out) <= 80
