"""Names of incoming documents: metadata only, never paths.

A file or upload name is untrusted text. ``display_name`` makes it safe to show and store (no control
or bidirectional-override characters, no ``..`` or ``.`` segments, no leading ``/``); ``origin_key``
normalises it further into the key that recognises a new version of a known document; ``base_slug``
turns it into the stem of ``raw/<slug>.<ext>``. Nothing here touches the file system.
"""

from __future__ import annotations

import re
import unicodedata

from ingest.document import ANSI_ESCAPE
from wiki.slug import slugify

MAX_ORIGIN = 1000
SLUG_LEN = 80
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_DOC_SUFFIX = re.compile(
    r"\.(?:md|markdown|mdown|mkd|mdx|erb|html?|xhtml|txt|text|pdf|docx|rst)\Z", re.IGNORECASE
)


def display_name(name: str) -> str:
    """Sanitise a file or upload name for display and storage.

    Control characters (including NUL and ANSI escapes' ESC) and bidirectional overrides are removed,
    backslashes count as separators, and empty, ``.`` and ``..`` segments are dropped, so the result
    never climbs out of anything when someone later mistakes it for a path.

    Returns:
        A relative POSIX-looking name, at most 1000 characters; ``"unnamed"`` when nothing is left.
    """
    text = unicodedata.normalize("NFC", _UNSAFE.sub("", ANSI_ESCAPE.sub("", name[: MAX_ORIGIN * 4])))
    segments = [" ".join(s.split()) for s in text.replace("\\", "/").split("/")]
    kept = [s for s in segments if s and s not in (".", "..") and s.strip(".")]
    out = "/".join(kept)[-MAX_ORIGIN:].lstrip("/")
    return out or "unnamed"


def origin_key(name: str) -> str:
    """The key under which versions of one document are recognised: the display name, case-folded."""
    return display_name(name).casefold()


def base_slug(name: str) -> str:
    """A slug for the document's raw file from its name's last segment, without document suffixes.

    ``"PM2020-001 - Inotify file watches exhaustion.md"`` -> ``pm2020-001-inotify-file-watches-exhaustion``;
    ``"access-eks-cluster.html.md.erb"`` -> ``access-eks-cluster``.
    """
    stem = display_name(name).rsplit("/", 1)[-1]
    for _ in range(3):
        shorter = _DOC_SUFFIX.sub("", stem)
        if shorter == stem or not shorter.strip("."):
            break
        stem = shorter
    return slugify(stem, max_len=SLUG_LEN)
