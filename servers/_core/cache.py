"""A small in-process LRU with expiry, shared by the clients (channels, users, folder ancestry, texts)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Entries expire ``ttl_s`` after they were put; beyond ``max_items`` the least recently used goes."""

    def __init__(self, ttl_s: float, max_items: int = 5000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_items, self.clock = ttl_s, max_items, clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None or hit[0] < self.clock():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V) -> V:
        self._items[key] = (self.clock() + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return value
