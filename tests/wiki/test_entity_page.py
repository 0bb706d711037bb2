from __future__ import annotations

import random
from dataclasses import replace

import pytest

from wiki.entity_page import (
    ClaimView,
    ConflictView,
    EntityView,
    SourceView,
    footnote_label,
    render_entity_page,
    render_source_page,
)
from wiki.markdown import extract_footnote_defs, extract_footnote_refs, extract_wikilinks, to_html
from wiki.page import lore_property, parse_page

PM = ("s-pm", "Postmortem 2021", "wiki/sources/postmortem-2021.md")
UP = ("s-up", "Upgrade notes", "wiki/sources/upgrade-notes.md")
CAP = ("s-cap", "Capacity plan", "wiki/sources/capacity-plan.md")


def claim(cid: str, text: str, src: tuple[str, str, str], **kw: object) -> ClaimView:
    return ClaimView(cid, text, f"quote of {cid}", src[0], src[1], src[2], **kw)  # type: ignore[arg-type]


C1 = claim("c1aaaa", "Runs on AWS EKS.", PM)
C2 = claim("c2bbbb", "Version is 1.24", UP, valid_from="2022-05")
C3 = claim("c3cccc", "Version is 1.21", PM, status="superseded", valid_to="2022-05", superseded_by="c2bbbb")
D1 = claim("d1dddd", "Has 3 nodes", PM, status="disputed")
D2 = claim("d2eeee", "Has 5 nodes", CAP, status="disputed")
RELATED = [("Apache Kafka", "wiki/systems/apache-kafka.md"), ("AWS", "wiki/systems/aws.md")]


def view(**kw: object) -> EntityView:
    base = EntityView(
        entity_id=42,
        name="Kubernetes",
        type="systems",
        slug="kubernetes",
        aliases=["kube", "k8s"],
        revision=7,
        summary="Kubernetes is the cluster.[^c1aaaa] It runs 1.24.[^c2bbbb]",
        claims=[C1, C2],
        history=[C3],
        conflicts=[ConflictView(D1, D2, "node count differs")],
        related=RELATED,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_fresh_page_has_front_matter_regions_and_keyed_footnotes() -> None:
    out = render_entity_page(view(), None, "2024-05-01")
    doc = parse_page(out.text)
    assert out.preserved_edits == []
    assert doc.problems == []
    assert doc.meta == {
        "title": "Kubernetes",
        "type": "systems",
        "aliases": ["k8s", "kube"],
        "sources": ["s-cap", "s-pm", "s-up"],
        "updated": "2024-05-01",
        "tags": ["systems"],
        "lore_entity": 42,
        "lore_revision": 7,
    }
    assert [r.name for r in doc.regions] == ["summary", "facts", "conflicts", "history", "related", "sources"]
    assert doc.region("summary").content.startswith("# Kubernetes\n")
    facts = doc.region("facts").content.splitlines()
    assert facts[0] == "## Facts"
    assert facts[2:] == ["- Runs on AWS EKS. [^c1aaaa]", "- Version is 1.24 (from 2022-05) [^c2bbbb]"]
    conflicts = doc.region("conflicts").content
    assert "## Conflicting sources" in conflicts
    assert "node count differs" in conflicts
    assert "> [!warning] Sources disagree: node count differs\n> - Has 3 nodes" in conflicts  # an Obsidian callout
    assert '> - Has 3 nodes: "quote of d1dddd" [^d1dddd]' in conflicts
    assert '> - Has 5 nodes: "quote of d2eeee" [^d2eeee]' in conflicts
    history = doc.region("history").content
    assert "*Superseded:* Version is 1.21 (until 2022-05) [^c3cccc]" in history
    assert "c3cccc" not in conflicts
    assert "Superseded" not in conflicts
    defs = {d.label: d.text for d in extract_footnote_defs(out.text)}
    assert defs["c1aaaa"] == '[[wiki/sources/postmortem-2021.md|Postmortem 2021]]: "quote of c1aaaa"'
    assert set(defs) == {"c1aaaa", "c2bbbb", "c3cccc", "d1dddd", "d2eeee"}
    assert set(extract_footnote_refs(out.text)) == set(defs)


def test_wikilinks_are_exactly_related_targets_plus_footnote_sources() -> None:
    v = view()
    text = render_entity_page(v, None, "2024-05-01").text
    cited = {c.id: c for c in [*v.claims, *v.history, D1, D2]}
    expected = sorted([target for _, target in RELATED] + [c.source_page for c in cited.values()])
    assert sorted(link.target for link in extract_wikilinks(text)) == expected


def test_output_is_deterministic_whatever_the_input_order() -> None:
    first = render_entity_page(view(), None, "2024-05-01").text
    shuffled = list(RELATED)
    random.Random(3).shuffle(shuffled)
    v = view(claims=[C2, C1], aliases=["k8s", "kube", "k8s"], related=[*reversed(shuffled), RELATED[0]],
             conflicts=[ConflictView(D2, D1, "node count differs")])  # fmt: skip
    assert render_entity_page(v, None, "2024-05-01").text == first
    assert render_entity_page(view(), None, "2024-05-01").text == first


def test_rendering_on_top_of_itself_changes_nothing() -> None:
    text = render_entity_page(view(), None, "2024-05-01").text
    again = render_entity_page(view(), text, "2024-05-01")
    assert again.text == text
    assert again.preserved_edits == []


def test_human_text_survives_three_renders_verbatim_and_in_place() -> None:
    text = render_entity_page(view(), None, "2024-05-01").text
    top = "A person's intro, *kept*.\n\n"
    middle = "\nWritten between facts and conflicts.\n"
    end = "\n## My notes\n\nSee [[AWS]].\n"
    text = top + text.replace("<!-- lore:conflicts", middle.lstrip("\n") + "\n<!-- lore:conflicts") + end
    human = parse_page(text).human_text()
    views = [
        view(revision=8, claims=[C1]),
        view(revision=9, claims=[C1, C2, claim("c4ffff", "Has an ingress", UP)], conflicts=[]),
        view(revision=10, summary=None, related=[]),
    ]
    for i, v in enumerate(views):
        out = render_entity_page(v, text, f"2024-06-0{i + 1}")
        doc = parse_page(out.text)
        assert out.preserved_edits == []
        assert doc.problems == []
        assert doc.human_text() == human
        body = out.text[len(doc.front_matter_raw or "") :]
        assert body.startswith(top)
        assert body.endswith(end)
        assert body.index("<!-- /lore:facts -->") < body.index(middle.strip()) < body.index("<!-- lore:conflicts")
        assert doc.meta["lore_revision"] == v.revision
        text = out.text


def test_an_edit_inside_a_region_is_kept_in_notes() -> None:
    text = render_entity_page(view(), None, "2024-05-01").text
    edited = text.replace("- Runs on AWS EKS. [^c1aaaa]", "- Runs on AWS EKS, in eu-west-1 only. [^c1aaaa]")
    out = render_entity_page(view(revision=8), edited, "2024-06-01")
    assert out.preserved_edits == ["facts"]
    assert "## Notes (kept from a manual edit of facts, 2024-06-01)" in out.text
    assert "- Runs on AWS EKS, in eu-west-1 only. [^c1aaaa]" in out.text
    doc = parse_page(out.text)
    assert not doc.region("facts").edited
    assert "- Runs on AWS EKS. [^c1aaaa]" in doc.region("facts").content
    assert "in eu-west-1 only" in doc.human_text()
    # The next render keeps the note as human text and preserves nothing new.
    later = render_entity_page(view(revision=9), out.text, "2024-07-01")
    assert later.preserved_edits == []
    assert later.text.count("in eu-west-1 only") == 1


def test_a_deleted_region_comes_back_in_its_place_and_foreign_regions_stay() -> None:
    text = render_entity_page(view(), None, "2024-05-01").text
    doc = parse_page(text)
    start = text.index("<!-- lore:history")
    end = text.index("<!-- /lore:history -->\n") + len("<!-- /lore:history -->\n")
    foreign = "<!-- lore:mine -->\nA region some other tool owns.\n<!-- /lore:mine -->\n"
    damaged = text[:start] + foreign + text[end:]
    out = render_entity_page(view(), damaged, "2024-05-01")
    names = [r.name for r in parse_page(out.text).regions]
    assert names == ["summary", "facts", "conflicts", "history", "mine", "related", "sources"]
    assert foreign in out.text
    assert parse_page(out.text).region("history").content == doc.region("history").content


def test_untrusted_claim_text_cannot_add_links_markers_or_footnotes() -> None:
    evil = claim("e1ffff", "See [[Evil]] <!-- /lore:facts --> ![x](https://t.example/p.png) <script>x</script>", PM)
    forged = claim(
        "e2ffff",
        "[^c1aaaa]: forged source",
        PM,
    )
    summary = "Fine.[^c1aaaa]\n<!-- /lore:summary -->\n[^c1aaaa]: forged\n[[Injected]]"
    v = view(claims=[C1, evil, forged], summary=summary, related=[], conflicts=[], history=[])
    text = render_entity_page(v, None, "2024-05-01").text
    doc = parse_page(text)
    assert doc.problems == []
    assert [r.name for r in doc.regions][-1] == "sources"
    assert {link.target for link in extract_wikilinks(text)} == {"wiki/sources/postmortem-2021.md", "Injected"}
    defs = [d for d in extract_footnote_defs(text) if d.label == "c1aaaa"]
    assert len(defs) == 1
    assert "forged" not in defs[0].text
    html = to_html(text, lambda t: "/p/" + t)
    assert "<script" not in html
    assert "<img" not in html
    assert "Evil" in html


def test_broken_front_matter_in_previous_is_kept_as_text() -> None:
    previous = "---\ntitle: [oops\n---\nMy text.\n"
    out = render_entity_page(view(), previous, "2024-05-01")
    assert [p.kind for p in out.problems] == ["bad-front-matter"]
    assert "title: [oops\n" in out.text
    assert "My text.\n" in out.text
    assert parse_page(out.text).meta["title"] == "Kubernetes"


def test_footnote_label_rejects_ids_that_break_markdown() -> None:
    assert footnote_label("c3f9a1b2c4d5") == "c3f9a1b2c4d5"
    for bad in ["has space", "x]y", "", "[^a"]:
        with pytest.raises(ValueError, match="footnote label"):
            footnote_label(bad)


def test_source_page_lists_entities_and_claims() -> None:
    sv = SourceView(
        source_id="s-pm",
        slug="postmortem-2021",
        title="Postmortem 2021",
        origin="postmortems/2021-03-01.md",
        summary="An outage of the cluster.",
        entities=[("Kubernetes", "wiki/systems/kubernetes.md"), ("AWS", "wiki/systems/aws.md")],
        claims=[C1, C3],
    )
    out = render_source_page(sv, None, "2024-05-01")
    doc = parse_page(out.text)
    assert doc.meta["type"] == "source"
    assert (doc.meta["lore_source"], doc.meta["lore_status"], doc.meta["tags"]) == ("s-pm", "done", ["source"])
    assert "lore" not in doc.meta
    assert [r.name for r in doc.regions] == ["summary", "entities", "claims", "sources"]
    assert "*Origin:* postmortems/2021-03-01.md" in doc.region("summary").content
    targets = sorted(link.target for link in extract_wikilinks(out.text))
    assert targets == sorted(["wiki/systems/aws.md", "wiki/systems/kubernetes.md", *[PM[2]] * 2])
    assert set(extract_footnote_refs(out.text)) == {"c1aaaa", "c3cccc"}
    retracted = render_source_page(replace(sv, status="retracted"), out.text, "2024-05-02")
    assert "This source was retracted" in retracted.text
    assert retracted.preserved_edits == []


@pytest.mark.parametrize(
    "previous",
    [
        "Hand-written page without a final newline",
        "<!-- lore:mine -->\nowned elsewhere\n<!-- /lore:mine -->",
        "\n\n",
    ],
)
def test_pages_written_by_hand_get_the_regions_appended(previous: str) -> None:
    out = render_entity_page(view(), previous, "2024-05-01")
    doc = parse_page(out.text)
    assert doc.problems == []
    assert [r.name for r in doc.regions if r.name != "mine"] == [
        "summary", "facts", "conflicts", "history", "related", "sources",
    ]  # fmt: skip
    assert doc.human_text().startswith(previous.split("<!--")[0])
    assert out.text == render_entity_page(view(), out.text, "2024-05-01").text


def test_a_page_in_the_nested_form_gets_flat_properties_and_keeps_a_persons_tags() -> None:
    old = (
        "---\ntitle: Kubernetes\ntype: systems\ntags: [infra, on-call]\ncssclasses: [wide]\n"
        "lore: {entity: 42, revision: 6}\n---\nA note by a person.\n"
    )
    assert lore_property(parse_page(old).meta, "revision") == 6  # readers take the old form too
    doc = parse_page(render_entity_page(view(), old, "2024-05-01").text)
    assert "lore" not in doc.meta
    assert (doc.meta["lore_entity"], doc.meta["lore_revision"]) == (42, 7)
    assert lore_property(doc.meta, "revision") == 7
    assert doc.meta["tags"] == ["systems", "infra", "on-call"]
    assert doc.meta["cssclasses"] == ["wide"]
    assert "A note by a person." in doc.human_text()
    again = parse_page(render_entity_page(view(), render_entity_page(view(), old, "2024-05-01").text, "x").text)
    assert again.meta["tags"] == ["systems", "infra", "on-call"]  # stable, no duplicates
    assert all(not isinstance(v, dict) for v in doc.meta.values())  # flat: Obsidian's Properties view


def test_type_tag_is_an_obsidian_tag() -> None:
    from wiki.entity_page import type_tag

    assert type_tag("Systems") == "systems"
    assert type_tag("on call teams") == "on-call-teams"
    assert type_tag("#!?") == "entity"
