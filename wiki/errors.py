"""Errors of the pure page model.

The tree::

    WikiError
     └── PageError      a page document cannot be written as given (a region whose content would not
                        read back as the same region, an invalid region name, text that does not end a line
                        before a marker)

Parsing never raises: malformed page text is kept as human text and reported in ``PageDoc.problems``.
"""

from __future__ import annotations


class WikiError(Exception):
    """Base class of every error raised by the ``wiki`` package."""


class PageError(WikiError):
    """A page document is inconsistent and rendering it would not round-trip."""
