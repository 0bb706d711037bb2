from __future__ import annotations

from wiki.catalog import CatalogEntry, render_index
from wiki.entity_page import ClaimView, EntityView, SourceView, render_entity_page, render_source_page
from wiki.lint import Finding, lint_pages

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
