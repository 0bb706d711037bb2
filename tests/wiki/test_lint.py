from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wiki.catalog import INDEX_PATH as INDEX
from wiki.catalog import CatalogEntry, render_index
from wiki.entity_page import ClaimView, EntityView, SourceView, render_entity_page, render_source_page
from wiki.lint import Finding, LedgerPage, OpenDispute, lint_catalog, lint_disputes, lint_freshness, lint_pages

DAY = "2024-05-01"
PM = ("s-pm", "Postmortem", "wiki/sources/pm.md")
UP = ("s-up", "Upgrade", "wiki/sources/up.md")


def claim(cid: str, text: str, src: tuple[str, str, str]) -> ClaimView:
    return ClaimView(cid, text, f"quote {cid}", src[0], src[1], src[2])


C1, C2, C5 = claim("c1", "Runs on EKS.", PM), claim("c2", "Version 1.24.", UP), claim("c5", "Hosts the cluster.", PM)
K8S, AWS = "wiki/systems/kubernetes.md", "wiki/systems/aws.md"
CLAIMS = {"c1", "c2", "c5", "c9"}


def healthy_wiki() -> dict[str, str]:
    k8s = EntityView(1, "Kubernetes", "systems", "kubernetes", ["k8s"], 1, "The cluster.[^c1] It runs 1.24.[^c2]",
                     [C1, C2], related=[("AWS", AWS)])  # fmt: skip
    aws = EntityView(2, "AWS", "systems", "aws", [], 1, None, [C5, C1], related=[("Kubernetes", K8S)])
    pm = SourceView("s-pm", "pm", "Postmortem", "pm.md", None, [("Kubernetes", K8S), ("AWS", AWS)], [C1, C5])
    up = SourceView("s-up", "up", "Upgrade", "up.md", None, [("Kubernetes", K8S)], [C2])
    pages = {
        K8S: render_entity_page(k8s, None, DAY).text,
        AWS: render_entity_page(aws, None, DAY).text,
        "wiki/sources/pm.md": render_source_page(pm, None, DAY).text,
        "wiki/sources/up.md": render_source_page(up, None, DAY).text,
    }
    entries = [CatalogEntry(path.split("/")[-1], "x", path) for path in pages]
    pages["wiki/index.md"] = render_index(entries, None, DAY).text
    return pages


def test_a_rendered_wiki_is_clean() -> None:
    assert lint_pages(healthy_wiki(), CLAIMS) == []


def test_every_kind_of_problem_is_found() -> None:
    pages = healthy_wiki()
    k8s = pages[K8S]
    k8s = k8s.replace("The cluster.[^c1] It runs 1.24.[^c2]", "The cluster.[^c1] It is big. It runs 1.24. [^c2]")
    k8s = k8s.replace("- Runs on EKS. [^c1]", "- Runs on EKS. [^c1]\n- Has no citation\n- Cites nothing real [^zz]")
    k8s = k8s.replace("## Related", "## Related\n\n- [[Missing page]]")
    k8s += "\nA person's remark citing [^c9] and their own note.[^mine]\n\n[^mine]: my own footnote\n"
    k8s += "\nSee [[k8s]] and [[Nowhere]].\n<!-- lore:facts -->\n"
    pages[K8S] = k8s
    pages["wiki/notes/ideas.md"] = "# Ideas\n\nLinks to [[Kubernetes]].\n"
    pages["wiki/index.md"] = pages["wiki/index.md"].replace("- [[wiki/sources/up.md|up.md]]\n", "")
    unclosed = k8s.split("\n").index("<!-- lore:facts -->") + 1
    findings = lint_pages(pages, CLAIMS, unquoted={"c5"}, min_claims=2)
    assert findings == sorted(
        [
            Finding("error", "broken-link", K8S, "[[Missing page]] names no page"),
            Finding("warning", "broken-link", K8S, "[[Nowhere]] names no page"),
            Finding("error", "not-in-index", "wiki/notes/ideas.md", "wiki/index.md does not list this page"),
            Finding("error", "not-in-index", "wiki/sources/up.md", "wiki/index.md does not list this page"),
            Finding("error", "uncited-fact", K8S, "facts: 'Has no citation'"),
            Finding("error", "undefined-footnote", K8S, "[^c9] has no definition"),
            Finding("error", "unknown-claim", K8S, "[^zz] names no claim"),
            Finding("error", "unquoted-claim", AWS, "[^c5]: quote not found in its source"),
            Finding("error", "unquoted-claim", "wiki/sources/pm.md", "[^c5]: quote not found in its source"),
            Finding("warning", "edited-region", K8S, "region 'facts' was edited by hand"),
            Finding("warning", "edited-region", K8S, "region 'related' was edited by hand"),
            Finding("warning", "edited-region", K8S, "region 'summary' was edited by hand"),
            Finding("warning", "malformed-page", K8S, f"line {unclosed}: region 'facts' is never closed"),
            Finding("warning", "orphan", "wiki/notes/ideas.md", "no other page links here"),
            Finding("warning", "uncited-sentence", K8S, "summary: 'It is big.'"),
            Finding("warning", "edited-region", "wiki/index.md", "region 'catalog' was edited by hand"),
        ]
    )


def test_stub_and_orphan_and_missing_index() -> None:
    pages = healthy_wiki()
    del pages["wiki/index.md"]
    lonely = EntityView(3, "Lonely", "concepts", "lonely", [], 1, None, [C5])
    pages["wiki/concepts/lonely.md"] = render_entity_page(lonely, None, DAY).text
    findings = lint_pages(pages, CLAIMS, min_claims=2)
    assert findings == [
        Finding("error", "no-index", "wiki/index.md", "the wiki has pages but no index"),
        Finding("warning", "orphan", "wiki/concepts/lonely.md", "no other page links here"),
        Finding("warning", "stub", "wiki/concepts/lonely.md", "1 claim(s) cited, fewer than 2"),
    ]


# --- checks against the ledger ------------------------------------------------------------------

NOW = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)


def test_a_dispute_is_stale_only_past_the_allowed_age() -> None:
    old = OpenDispute(K8S, "c2", "c1", datetime(2024, 5, 1, 9, 0))  # naive: UTC, as SQLite returns it
    young = OpenDispute(AWS, "c5", "c1", NOW - timedelta(days=29))
    assert lint_disputes([old, young], now=NOW, max_age_days=30) == [
        Finding("warning", "dispute-stale", K8S, "[^c1] vs [^c2] open for 60 days (since 2024-05-01), more than 30"),
    ]
    assert lint_disputes([old, young], now=NOW, max_age_days=61) == []
    assert len(lint_disputes([old, young], now=NOW + timedelta(days=2), max_age_days=30)) == 2
    assert lint_disputes([], now=NOW, max_age_days=0) == []


def ledger_for(pages: dict[str, str], **changes: object) -> LedgerPage:
    """The ledger's view of the Kubernetes page as healthy_wiki renders it (revision 1, c1 and c2)."""
    values: dict[str, object] = {"path": K8S, "claim_ids": frozenset({"c1", "c2"}), "revision": 1}
    values.update(changes)
    return LedgerPage(**values)  # type: ignore[arg-type]


def test_a_page_matching_the_ledger_is_fresh() -> None:
    pages = healthy_wiki()
    assert lint_freshness(pages, [ledger_for(pages)]) == []
    gone = LedgerPage("wiki/systems/gone.md", frozenset(), 4)  # no claims and no page: nothing to say
    assert lint_freshness(pages, [gone]) == []


def test_a_page_behind_the_ledger_is_stale() -> None:
    pages = healthy_wiki()
    behind = ledger_for(pages, claim_ids=frozenset({"c1", "c7"}), revision=3)
    [finding] = lint_freshness(pages, [behind])
    assert finding == Finding(
        "error", "stale-page", K8S,
        "1 ledger claim(s) not on the page ([^c7]); 1 claim(s) the ledger no longer shows here ([^c2]); "
        "rendered from revision 1, the ledger is at 3; no render queued",
    )  # fmt: skip
    assert lint_freshness(pages, [ledger_for(pages, revision=3, render_queued=True)]) == [
        Finding("warning", "stale-page", K8S, "rendered from revision 1, the ledger is at 3; render queued")
    ]
    [edited] = lint_freshness(pages, [ledger_for(pages, revision=3, as_recorded=False)])
    assert edited.severity == "warning"
    assert edited.detail.endswith("is not the last recorded render (a commit since, or one in flight)")


def test_a_missing_or_leftover_page_is_stale() -> None:
    pages = healthy_wiki()
    missing = LedgerPage("wiki/systems/eks.md", frozenset({"c9"}), 2)
    leftover = ledger_for(pages, claim_ids=frozenset())
    assert lint_freshness(pages, [missing, leftover]) == [
        Finding("error", "stale-page", "wiki/systems/eks.md",
                "missing at HEAD; the ledger has 1 claim(s) for it; no render queued"),
        Finding("error", "stale-page", K8S,
                "the ledger has no claim left to show here; the page should be gone; no render queued"),
    ]  # fmt: skip


def test_a_citation_a_person_moved_out_of_the_machine_regions_does_not_count() -> None:
    pages = healthy_wiki()
    aws = LedgerPage(AWS, frozenset({"c1", "c5"}), 1, as_recorded=False)
    assert lint_freshness(pages, [aws]) == []
    text = pages[AWS].replace("- Hosts the cluster. [^c5]\n", "")
    text = text.replace('[^c5]: [[wiki/sources/pm.md|Postmortem]]: "quote c5"\n', "")
    pages[AWS] = text + "\nMy notes: it hosts the cluster.[^c5]\n\n[^c5]: my copy\n"
    assert lint_freshness(pages, [aws]) == [
        Finding("warning", "stale-page", AWS, "1 ledger claim(s) not on the page ([^c5]); "
                "the page at HEAD is not the last recorded render (a commit since, or one in flight)"),
    ]  # fmt: skip


def catalog_page(titles: list[str]) -> str:
    return render_index([CatalogEntry(t, "systems", f"wiki/systems/{t.lower()}.md") for t in titles], None, DAY).text


def test_catalog_drift_compares_the_catalog_region_only() -> None:
    fresh = {INDEX: catalog_page(["AWS", "Kubernetes"])}
    later = render_index([CatalogEntry(t, "systems", f"wiki/systems/{t.lower()}.md") for t in ["AWS", "Kubernetes"]],
                         None, "2030-01-01").text  # fmt: skip
    assert later != fresh[INDEX]
    assert lint_catalog({INDEX: later + "\nA person's note below the catalog.\n"}, fresh) == []
    assert lint_catalog({INDEX: catalog_page(["AWS"])}, fresh, note="catalog job queued") == [
        Finding("warning", "catalog-drift", INDEX,
                "3 line(s) missing and 2 out of date against the ledger, e.g. '2 pages.'; catalog job queued"),
    ]  # fmt: skip
    assert lint_catalog({}, fresh) == [
        Finding("warning", "catalog-drift", INDEX, "missing at HEAD; the ledger generates it")
    ]
    assert lint_catalog({INDEX: "# Index\n\nwritten by hand\n"}, fresh) == [
        Finding("warning", "catalog-drift", INDEX, "has no catalog region; the ledger generates it")
    ]
