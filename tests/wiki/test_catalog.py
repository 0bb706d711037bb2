from __future__ import annotations

from wiki.catalog import (
    CatalogEntry,
    DisputeView,
    LogEntry,
    render_contradictions,
    render_index,
    render_log,
)
from wiki.entity_page import ClaimView
from wiki.markdown import extract_wikilinks
from wiki.page import parse_page

ENTRIES = [
    CatalogEntry("Kubernetes", "systems", "wiki/systems/kubernetes.md", "Container orchestration", 5),
    CatalogEntry("aws", "systems", "wiki/systems/aws.md"),
    CatalogEntry("Platform team", "teams", "wiki/teams/platform-team.md", "", 1),
    CatalogEntry("Postmortem 2021", "source", "wiki/sources/pm.md"),
]


def test_index_lists_every_page_grouped_by_type() -> None:
    text = render_index(ENTRIES, None, "2024-05-01").text
    doc = parse_page(text)
    assert doc.meta["type"] == "catalog"
    assert [r.name for r in doc.regions] == ["catalog"]
    assert sorted(link.target for link in extract_wikilinks(text)) == sorted(e.target for e in ENTRIES)
    body = doc.region("catalog").content
    headings = [line for line in body.splitlines() if line.startswith("## ")]
    assert headings == ["## Systems (2)", "## Teams (1)", "## Sources (1)"]
    assert body.index("|aws]]") < body.index("|Kubernetes]]")  # alphabetical, case-insensitive
    assert "[[wiki/systems/kubernetes.md|Kubernetes]]: Container orchestration (5 claims)" in body
    assert "4 pages." in body


def test_index_is_deterministic_and_keeps_human_text() -> None:
    first = render_index(ENTRIES, None, "2024-05-01").text
    assert render_index(list(reversed(ENTRIES)), None, "2024-05-01").text == first
    edited = first + "\nA person's remark under the index.\n"
    again = render_index([*ENTRIES, CatalogEntry("Kafka", "systems", "wiki/systems/kafka.md")], edited, "2024-05-02")
    assert again.text.endswith("\nA person's remark under the index.\n")
    assert "[[wiki/systems/kafka.md|Kafka]]" in again.text


def test_log_is_chronological_and_names_source_and_pages() -> None:
    entries = [
        LogEntry(
            "2024-05-02T10:00:00Z", "ingested", "Upgrade notes", "wiki/sources/up.md", 3,
            [("Kubernetes", "wiki/systems/kubernetes.md")],
        ),
        LogEntry("2024-05-01T09:00:00Z", "failed", "Bad.pdf", "", detail="parser timed out"),
    ]  # fmt: skip
    text = render_log(entries, None, "2024-05-02").text
    body = parse_page(text).region("catalog").content
    assert body.index("[2024-05-01T09:00:00Z] failed | Bad.pdf") < body.index("[2024-05-02T10:00:00Z] ingested")
    assert "- Source: Bad.pdf" in body
    assert "- Detail: parser timed out" in body
    assert "- Claims: 3" in body
    assert [x.target for x in extract_wikilinks(text)] == ["wiki/sources/up.md", "wiki/systems/kubernetes.md"]
    assert "Nothing ingested yet." in render_log([], None, "2024-05-02").text


def test_contradictions_show_both_claims_with_sources() -> None:
    a = ClaimView("d1", "Has 3 nodes", "three nodes", "s1", "PM", "wiki/sources/pm.md")
    b = ClaimView("d2", "Has 5 nodes", "five nodes", "s2", "Cap", "wiki/sources/cap.md")
    c = ClaimView("d3", "Owned by [[Team X]]", "team x", "s2", "Cap", "wiki/sources/cap.md")
    disputes = [
        DisputeView("Kubernetes", "wiki/systems/kubernetes.md", b, a, "node count", "2024-05-01"),
        DisputeView("AWS", "wiki/systems/aws.md", a, c),
    ]
    text = render_contradictions(disputes, None, "2024-05-02").text
    body = parse_page(text).region("catalog").content
    assert "2 open disputes." in body
    assert body.index("## [[wiki/systems/aws.md|AWS]]") < body.index("## [[wiki/systems/kubernetes.md|Kubernetes]]")
    assert '> - Has 3 nodes: "three nodes" ([[wiki/sources/pm.md|PM]])' in body
    assert '> - Has 5 nodes: "five nodes" ([[wiki/sources/cap.md|Cap]])' in body
    assert "> [!warning] Sources disagree: node count (since 2024-05-01)" in body
    assert "Team X" not in {x.target for x in extract_wikilinks(text)}
    assert render_contradictions(list(reversed(disputes)), None, "2024-05-02").text == text
