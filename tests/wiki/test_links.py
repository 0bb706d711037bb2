from __future__ import annotations

from wiki.links import LinkIndex, PageRef, normalize_target, page_target

PAGES = [
    PageRef("wiki/systems/kubernetes.md", "Kubernetes", ["k8s", "Kube"]),
    PageRef("wiki/sources/kubernetes.md", "Kubernetes upgrade notes"),
    PageRef("wiki/places/cathedral-of-saint-augustine.md", "Cathedral of Saint Augustine"),
    PageRef("wiki/places/cathedral-of-saint-augustine-2.md", "Cathedral of Saint Augustine"),
]


def test_targets_resolve_by_path_title_alias_and_file_name() -> None:
    index = LinkIndex(PAGES)
    for target in ["systems/kubernetes", "wiki/systems/kubernetes.md", "./systems/kubernetes.md", "kubernetes",
                   "  KUBERNETES ", "k8s", "kube"]:  # fmt: skip
        assert index.resolve(target) == "wiki/systems/kubernetes.md", target
    assert index.resolve("sources/kubernetes") == "wiki/sources/kubernetes.md"
    assert index.resolve("Kubernetes upgrade   notes") == "wiki/sources/kubernetes.md"
    assert index.resolve("nowhere") is None
    assert index.resolve("") is None


def test_same_name_pages_are_reported_and_resolved_deterministically() -> None:
    index = LinkIndex(PAGES)
    assert index.resolve("Cathedral of Saint Augustine") == "wiki/places/cathedral-of-saint-augustine-2.md"
    assert index.ambiguous("Cathedral of Saint Augustine") == [
        "wiki/places/cathedral-of-saint-augustine-2.md",
        "wiki/places/cathedral-of-saint-augustine.md",
    ]
    assert index.ambiguous("places/cathedral-of-saint-augustine") == []
    assert index.ambiguous("k8s") == []


def test_helpers() -> None:
    assert page_target("wiki/systems/k.md") == "systems/k"
    assert normalize_target("/Wiki/A  B.md") == "wiki/a b"
