"""Errors of the intake path.

::

    IngestError
     ├── Refused          the file was not taken in at all (symlink, FIFO, too big, outside the folder,
     │                    changed while reading): no bytes stored, no Source row
     └── ParseFailed      the bytes were kept but could not be turned into text
          └── Unsupported the content is not a document type Lore reads (binary, bad encoding, empty)

Every error carries ``reason``: one sentence a person understands, shown as the source's error and in
the intake result.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of intake errors; ``reason`` is the human-readable explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(IngestError):
    """The file was not read or not accepted; nothing was stored."""


class ParseFailed(IngestError):
    """The document could not be turned into text (its raw bytes may still be stored)."""


class Unsupported(ParseFailed):
    """Sniffing found no document type Lore reads: binary data, an unknown encoding, an empty file."""
