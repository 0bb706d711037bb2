"""The page file model: YAML front matter, then markdown made of human text and machine-owned regions.

A page reads::

    ---
    title: Kubernetes
    type: systems
    tags: [systems]
    lore_entity: 42
    lore_revision: 7
    ---
    <!-- lore:summary h=1a2b3c4d -->
    # Kubernetes
    ...
    <!-- /lore:summary -->

    Anything a person writes here is human text, kept verbatim.

``parse_page`` never raises and never loses a byte: ``render_page(parse_page(text)) == text`` for every
string. What cannot be read as front matter or as a region (an unclosed or nested marker, a closing marker
with no opening one, a second region of the same name, YAML that does not parse to a mapping) stays human
text and is reported in ``PageDoc.problems``. A region whose content no longer matches the hash in its
opening marker was edited by a person (``Region.edited``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from wiki.errors import PageError
from wiki.markers import CLOSE_RE, NAME_RE, OPEN_RE, close_marker, content_hash, is_marker_line, open_marker

__all__ = ["PageDoc", "Problem", "Region", "Text", "lore_property", "parse_page", "render_page", "split_lines"]


def lore_property(meta: Any, name: str) -> Any:
    """A machine property of a page's front matter: flat ``lore_<name>``, or the older nested
    ``lore: {<name>: ...}`` of pages written before the flat form; None when absent."""
    if not isinstance(meta, dict):
        return None
    if f"lore_{name}" in meta:
        return meta[f"lore_{name}"]
    nested = meta.get("lore")
    return nested.get(name) if isinstance(nested, dict) else None


@dataclass
class Text:
    """Human-owned text, kept verbatim (line endings included)."""

    text: str


@dataclass
class Region:
    """A machine-owned region ``<!-- lore:NAME h=HASH -->`` ... ``<!-- /lore:NAME -->``.

    ``content`` is everything between the two marker lines: empty, or whole lines each ending in a newline.
    ``hash`` is what the opening marker says (None when it carries none).
    """

    name: str
    content: str
    hash: str | None = None
    open_eol: str = "\n"
    close_eol: str = "\n"

    @classmethod
    def machine(cls, name: str, content: str) -> Region:
        """Return a region as the machine writes it: content ending in a newline, hash of that content."""
        if content and not content.endswith("\n"):
            content += "\n"
        return cls(name=name, content=content, hash=content_hash(content))

    @property
    def edited(self) -> bool:
        """True when a person changed the content after the machine wrote it (or wrote it unhashed)."""
        if self.hash is None:
            return bool(self.content.strip())
        return self.hash != content_hash(self.content)


@dataclass(frozen=True)
class Problem:
    """Something in a page that could not be read as structure; the text involved is kept as human text."""

    kind: str
    line: int
    detail: str


@dataclass
class PageDoc:
    """A parsed page. ``meta`` is the front matter mapping; ``parts`` is the body in order."""

    meta: dict[Any, Any] = field(default_factory=dict)
    parts: list[Text | Region] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    front_matter_raw: str | None = None
    _meta_at_parse: str | None = field(default=None, repr=False, compare=False)

    @property
    def regions(self) -> list[Region]:
        """The regions of the body, in order."""
        return [p for p in self.parts if isinstance(p, Region)]

    def region(self, name: str) -> Region | None:
        """Return the region called ``name``, or None."""
        return next((r for r in self.regions if r.name == name), None)

    def human_text(self) -> str:
        """Return all human text of the body joined in order (front matter excluded)."""
        return "".join(p.text for p in self.parts if isinstance(p, Text))


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping line endings (``str.splitlines`` also splits on form feeds etc.)."""
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _bare(line: str) -> str:
    return line.removesuffix("\n").removesuffix("\r")


def _eol(line: str) -> str:
    return line[len(_bare(line)) :]


class _Loader(yaml.SafeLoader):
    """Safe loader without aliases: ``a: &x [*x, *x ...]`` expansions cannot blow up comparisons."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed in front matter", mark)
        return super().compose_node(parent, index)


def _parse_front_matter(text: str, problems: list[Problem]) -> tuple[dict[Any, Any], str | None, str | None]:
    """Return ``(meta, raw front matter, meta as dumped now)``; ``({}, None, None)`` when there is none."""
    if not (text.startswith("---\n") or text.startswith("---\r\n")):
        return {}, None, None
    lines = split_lines(text)
    end = next((i for i in range(1, len(lines)) if _bare(lines[i]) == "---"), None)
    if end is None:
        problems.append(Problem("unclosed-front-matter", 1, "front matter has no closing '---' line"))
        return {}, None, None
    raw = "".join(lines[: end + 1])
    try:
        data = yaml.load("".join(lines[1:end]), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        if data is None:
            data = {}
        dumped = _dump_meta(data) if isinstance(data, dict) else ""
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        problems.append(Problem("bad-front-matter", 1, f"front matter is not valid YAML: {detail}"))
        return {}, None, None
    if not isinstance(data, dict):
        problems.append(Problem("bad-front-matter", 1, "front matter is not a mapping"))
        return {}, None, None
    return data, raw, dumped


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes a value shared by two keys twice instead of as an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML's unicode output mangles NEL and the Unicode line separators in plain or single-quoted
    # scalars; double quotes escape them (\N, \L, \P).
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump_meta(meta: dict[Any, Any]) -> str:
    return yaml.dump(
        meta, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1_000_000
    )


def _find_close(lines: list[str], start: int, name: str) -> tuple[int | None, Problem | None]:
    """Find the closing marker of the region opened at ``start``; a problem when there is none."""
    for j in range(start + 1, len(lines)):
        bare = _bare(lines[j])
        closing = CLOSE_RE.fullmatch(bare)
        if closing and closing["name"] == name:
            return j, None
        if closing:
            return None, Problem("mismatched-close", start + 1, f"region '{name}' is closed by '{bare}'")
        if OPEN_RE.fullmatch(bare):
            return None, Problem("nested-region", start + 1, f"region '{name}' contains another marker")
    return None, Problem("unclosed-region", start + 1, f"region '{name}' is never closed")


def parse_page(text: str) -> PageDoc:
    """Parse page text into a ``PageDoc``. Never raises; ``render_page`` of the result is ``text``.

    Args:
        text: the whole page file.

    Returns:
        The document; ``problems`` lists what could not be read as structure.
    """
    problems: list[Problem] = []
    meta, raw, dumped = _parse_front_matter(text, problems)
    line_offset = raw.count("\n") if raw else 0
    lines = split_lines(text[len(raw) if raw else 0 :])
    parts: list[Text | Region] = []
    human: list[str] = []
    names: set[str] = set()
    i = 0
    while i < len(lines):
        bare = _bare(lines[i])
        opening = OPEN_RE.fullmatch(bare)
        if opening is None:
            if CLOSE_RE.fullmatch(bare):
                problems.append(Problem("stray-close", line_offset + i + 1, f"'{bare}' closes no region"))
            human.append(lines[i])
            i += 1
            continue
        name = opening["name"]
        end, problem = _find_close(lines, i, name)
        if problem is not None or end is None:
            if problem is not None:
                problems.append(Problem(problem.kind, line_offset + problem.line, problem.detail))
            human.append(lines[i])
            i += 1
            continue
        if name in names:
            problems.append(Problem("duplicate-region", line_offset + i + 1, f"a second '{name}' region"))
            human.extend(lines[i : end + 1])
            i = end + 1
            continue
        names.add(name)
        if human:
            parts.append(Text("".join(human)))
            human = []
        content = "".join(lines[i + 1 : end])
        parts.append(Region(name, content, opening["hash"], _eol(lines[i]), _eol(lines[end])))
        i = end + 1
    if human:
        parts.append(Text("".join(human)))
    return PageDoc(
        meta=meta,
        parts=parts,
        problems=problems,
        front_matter_raw=raw,
        _meta_at_parse=dumped,
    )


def _render_front_matter(doc: PageDoc) -> str:
    try:
        dumped = _dump_meta(doc.meta)
    except yaml.YAMLError as exc:
        raise PageError(f"front matter cannot be written as YAML: {exc}") from exc
    if doc.front_matter_raw is not None and dumped == doc._meta_at_parse:
        return doc.front_matter_raw
    if not doc.meta:
        return ""
    return f"---\n{dumped}---\n"


def _check_region(region: Region) -> None:
    if not NAME_RE.fullmatch(region.name):
        raise PageError(f"invalid region name {region.name!r}")
    if region.hash is not None and not OPEN_RE.fullmatch(open_marker(region.name, region.hash)):
        raise PageError(f"invalid hash {region.hash!r} in region {region.name!r}")
    if region.open_eol not in ("\n", "\r\n") or region.close_eol not in ("\n", "\r\n", ""):
        raise PageError(f"invalid line ending around region {region.name!r}")
    if region.content and not region.content.endswith("\n"):
        raise PageError(f"content of region {region.name!r} must end with a newline")
    if any(is_marker_line(line) for line in split_lines(region.content)):
        raise PageError(f"content of region {region.name!r} contains a region marker line")


def render_page(doc: PageDoc) -> str:
    """Write a ``PageDoc`` as page text.

    Raises:
        PageError: when the document would not read back as itself: a region with an invalid name or
            hash, content that holds a marker line or does not end with a newline, a region that does not
            start on a new line, or text after a region that ends the file without a newline.
    """
    out = [_render_front_matter(doc)]
    at_line_start = out[0] == "" or out[0].endswith("\n")
    previous: Text | Region | None = None
    for part in doc.parts:
        if isinstance(part, Text):
            if not part.text:
                continue
            if isinstance(previous, Region) and not at_line_start:
                raise PageError("text follows a region that has no final line ending")
            out.append(part.text)
            at_line_start = part.text.endswith("\n")
            previous = part
            continue
        _check_region(part)
        if not at_line_start:
            raise PageError(f"region {part.name!r} does not start on a new line")
        out.append(open_marker(part.name, part.hash) + part.open_eol)
        out.append(part.content)
        out.append(close_marker(part.name) + part.close_eol)
        at_line_start = part.close_eol != ""
        previous = part
    return "".join(out)
