"""A bounded memory of recent results: two generations of a plain dictionary.

The parsers and the publisher see the same prefixes over and over; remembering
what a prefix text parses to (or which partition it goes to) turns microseconds
of work into one dictionary lookup. New entries go to the young generation; when
it is full it becomes the old one and the previous old one is dropped, and an
entry found in the old generation moves back to the young one. So whatever was
used within the last ``size`` insertions stays, memory is bounded by twice
``size`` entries, and a lookup that hits costs one ``dict.get``: callers read
``young`` directly on their hot path and call :meth:`recall` only on a miss.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    __slots__ = ("old", "size", "young")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a Recent cache needs a size of at least 1")
        self.size = size
        self.young: dict[K, V] = {}
        self.old: dict[K, V] = {}

    def recall(self, key: K) -> V | None:
        """The value remembered for ``key`` (moved to the young generation), or None."""
        value = self.young.get(key)
        if value is None:
            value = self.old.pop(key, None)
            if value is not None:
                self.remember(key, value)
        return value

    def remember(self, key: K, value: V) -> None:
        if len(self.young) >= self.size:
            self.old = self.young
            self.young = {}
        self.young[key] = value

    def __len__(self) -> int:
        return len(self.young) + len(self.old)
