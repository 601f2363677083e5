"""The order of a shuffled loop: a seeded permutation of ``range(n)``, computed index by index.

A shuffled loop of ``n`` values must not build a list of ``n`` indices (``num: 10**12``
would need terabytes before the first shot). :class:`Permutation` is a small-domain
block cipher instead: a balanced Feistel network on ``2k`` bits (``2**(2k) < 4 n``) with
*cycle walking* (re-encrypt until the result falls below ``n``, two rounds on average),
so ``order[i]`` costs a few microseconds and no memory, whatever ``n``. The round keys
come from the seed through BLAKE2b: the order depends only on ``(seed, n)``, in every
process and on every machine (no ``hash()``, no ``random`` state).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Permutation"]

_ROUNDS = 6
_MASK64 = (1 << 64) - 1


def _round_keys(seed: int) -> tuple[int, ...]:
    raw = seed.to_bytes(seed.bit_length() // 8 + 1, "little", signed=True)
    digest = hashlib.blake2b(raw, digest_size=8 * _ROUNDS, person=b"shotflow-order").digest()
    return tuple(int.from_bytes(digest[8 * r : 8 * r + 8], "little") for r in range(_ROUNDS))


def _mix(x: int, key: int) -> int:
    """A 64-bit mixing function (splitmix64's finaliser) of ``x`` under ``key``."""
    z = ((x ^ key) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class Permutation(Sequence[int]):
    """A permutation of ``range(size)`` fixed by ``seed`` (``None``: a fresh random seed), without a list.

    ``Permutation(n, s)[i]`` is the position run ``i``-th; equal ``(size, seed)`` give equal orders.
    """

    def __init__(self, size: int, seed: int | None) -> None:
        if size < 0:
            raise ValueError(f"a permutation of {size} values")
        self.size = size
        self.seed = secrets.randbits(64) if seed is None else seed
        bits = max(2, (size - 1).bit_length())
        self._half = (bits + 1) // 2
        self._low = (1 << self._half) - 1
        self._keys = _round_keys(self.seed)

    def __len__(self) -> int:
        return self.size

    def _encrypt(self, x: int) -> int:
        half, low = self._half, self._low
        left, right = x >> half, x & low
        for key in self._keys:
            left, right = right, left ^ (_mix(right, key) & low)
        return (left << half) | right

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.size))]
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(i)
        y = self._encrypt(i)
        while y >= self.size:  # cycle walking: stays inside range(size), a permutation still
            y = self._encrypt(y)
        return y

    def __iter__(self) -> Iterator[int]:
        return (self[i] for i in range(self.size))
