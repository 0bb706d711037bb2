"""An entity's neighbourhood, laid out for a server-drawn SVG (no script, no library).

:func:`layout` places the page in the middle, the pages one link away on an inner ring (evenly spaced,
in the order given) and those two links away on an outer ring, each beside the first inner page it is
linked to, so a branch of the graph stays together. Edges carry their ledger relation (``runs on``) or
no label for a plain wikilink. Coordinates are integers in a fixed ``WIDTH`` x ``HEIGHT`` box; the
template draws lines, circles and labels from them and CSS colours them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH = 760
HEIGHT = 600
INNER_R = 150
OUTER_R = 265
#: At most this many pages on each ring; the rest are counted, not drawn.
MAX_INNER = 14
MAX_OUTER = 24
LABEL_CHARS = 26


@dataclass(frozen=True)
class Edge:
    """A link between two pages; ``label`` is the ledger's relation, empty for a wikilink."""

    source: str
    target: str
    label: str = ""


@dataclass(frozen=True)
class Node:
    """A page placed on the drawing: ``ring`` 0 is the centre, 1 one hop, 2 two hops."""

    path: str
    title: str
    label: str
    ring: int
    x: int
    y: int


@dataclass(frozen=True)
class DrawnEdge:
    """An edge with its end points and where its label goes."""

    source: str
    target: str
    label: str
    x1: int
    y1: int
    x2: int
    y2: int
    lx: int
    ly: int


@dataclass(frozen=True)
class GraphView:
    """Everything the SVG template needs, plus how many neighbours were left out."""

    width: int
    height: int
    center: Node
    nodes: tuple[Node, ...]
    edges: tuple[DrawnEdge, ...]
    hidden: int


def short(title: str, limit: int = LABEL_CHARS) -> str:
    """A node label: the title, cut with an ellipsis past ``limit`` characters."""
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _at(radius: float, angle: float) -> tuple[int, int]:
    return round(WIDTH / 2 + radius * math.cos(angle)), round(HEIGHT / 2 + radius * math.sin(angle))


def layout(
    center: str,
    inner: Sequence[str],
    outer: Mapping[str, Sequence[str]],
    edges: Sequence[Edge],
    titles: Mapping[str, str],
) -> GraphView:
    """Place a two-ring neighbourhood.

    Args:
        center: the page the graph is about.
        inner: the pages one link away, in drawing order.
        outer: for each inner page, pages two links away first reached through it.
        edges: links among all of them (others are ignored; a pair is drawn once).
        titles: page path -> title (the path is shown when missing).

    Returns:
        The drawing, with ``hidden`` counting neighbours beyond ``MAX_INNER``/``MAX_OUTER``.
    """

    def node(path: str, ring: int, x: int, y: int) -> Node:
        title = titles.get(path, path)
        return Node(path, title, short(title), ring, x, y)

    middle = node(center, 0, WIDTH // 2, HEIGHT // 2)
    shown_inner = list(dict.fromkeys(p for p in inner if p != center))[:MAX_INNER]
    hidden = max(0, len(set(inner) - {center}) - len(shown_inner))
    placed: dict[str, Node] = {center: middle}
    step = 2 * math.pi / max(1, len(shown_inner))
    angles: dict[str, float] = {}
    for i, path in enumerate(shown_inner):
        angle = -math.pi / 2 + i * step
        angles[path] = angle
        placed[path] = node(path, 1, *_at(INNER_R, angle))
    budget = MAX_OUTER
    for parent in shown_inner:
        children = [p for p in dict.fromkeys(outer.get(parent, ())) if p not in placed]
        hidden += max(0, len(children) - budget)
        children = children[: max(0, budget)]
        budget -= len(children)
        spread = min(step * 0.8, 0.28 * len(children))
        for j, path in enumerate(children):
            offset = 0.0 if len(children) == 1 else spread * (j / (len(children) - 1) - 0.5)
            placed[path] = node(path, 2, *_at(OUTER_R, angles[parent] + offset))
    drawn: list[DrawnEdge] = []
    seen: set[frozenset[str]] = set()
    for edge in sorted(edges, key=lambda e: e.label == ""):  # labelled (ledger) edges win a pair
        pair = frozenset((edge.source, edge.target))
        a, b = placed.get(edge.source), placed.get(edge.target)
        if a is None or b is None or len(pair) < 2 or pair in seen:
            continue
        seen.add(pair)
        drawn.append(DrawnEdge(a.path, b.path, edge.label, a.x, a.y, b.x, b.y, (a.x + b.x) // 2, (a.y + b.y) // 2))
    nodes = tuple(n for n in placed.values() if n.ring > 0)
    return GraphView(WIDTH, HEIGHT, middle, nodes, tuple(drawn), hidden)
