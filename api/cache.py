"""A least-recently-used cache bounded by bytes (and optionally by entries), safe across threads.

The read path keeps what it derives from immutable inputs here (a parsed page by blob id, a page's
HTML or JSON body by blob id and ledger revision), so a bound on memory is all it needs: an entry is
never stale, only old.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Entries with their sizes; the least recently used go first when a bound is passed.

    Args:
        max_bytes: the sum of entry sizes kept (an entry larger than this is not kept at all).
        max_items: most entries kept (None: no count bound).
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_items: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes or (self.max_items is not None and len(self._entries) > self.max_items):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
