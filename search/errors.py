"""Errors of the search index and the embedder.

::

    StoreError (store.errors)
    └── SearchError
        ├── EmbeddingUnavailable    the embedding model cannot be loaded (missing package or files)
        └── IndexMismatch           stored vectors come from a different embedder (width or name)

They live beside the search modules so the search index stays one self-contained part of ``store``.
"""

from __future__ import annotations

from store.errors import StoreError


class SearchError(StoreError):
    """Base class of search index errors."""


class EmbeddingUnavailable(SearchError):
    """The embedding model cannot be loaded."""


class IndexMismatch(SearchError):
    """Stored embeddings do not match the embedder in use."""
