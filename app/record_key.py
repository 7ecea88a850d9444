"""A record's key for the disclosure perturbation, the same bits in any engine.

Released figures of protected datasets are perturbed by a function of the XOR of their records'
keys (``app.disclosure``). If the key depended on an engine's own hash function or on the folder
the files sit in, moving the data or loading it with another engine would change every released
figure, and two releases of the same count could be differenced. So the key is defined by bytes
and 64-bit integer arithmetic only:

    seed = int.from_bytes(blake2b((dataset + "\\x1f" + source_name).encode("utf-8"),
                                  digest_size=8).digest(), "little")
    key  = splitmix64(seed XOR (row * 0x9E3779B97F4A7C15 mod 2**64))

where ``splitmix64(x)`` is, all arithmetic modulo 2**64:

    z = x + 0x9E3779B97F4A7C15
    z = (z XOR (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z XOR (z >> 27)) * 0x94D049BB133111EB
    key = z XOR (z >> 31)

``dataset`` is the dataset's id, ``row`` the record's row number in its file (as stored in
``source_row``), and ``source_name`` the file's path relative to the folder of the catalogue
that lists it, with ``/`` between parts (``incidents/2024.csv``), or an uploaded file's own name:
never an absolute path, so the same catalogue in another folder gives the same keys.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1


def seed(dataset: str, source_name: str) -> int:
    """The per-file seed: the first 8 bytes, little endian, of a 64-bit BLAKE2b digest."""
    digest = hashlib.blake2b((dataset + "\x1f" + source_name).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
        return z ^ (z >> np.uint64(31))


def record_keys(dataset: str, source_name: str, rows: np.ndarray) -> np.ndarray:
    """The keys (uint64) of the records at file rows ``rows`` of ``source_name`` in ``dataset``."""
    rows = np.asarray(rows).astype(np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        spread = rows * np.uint64(_GOLDEN)
    return splitmix64(spread ^ np.uint64(seed(dataset, source_name)))


def record_key(dataset: str, source_name: str, row: int) -> int:
    """One record's key in plain Python integers: the definition, for checking an engine."""
    z = (seed(dataset, source_name) ^ ((row * _GOLDEN) & _MASK)) & _MASK
    z = (z + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def source_name(file: str | Path, folder: str | Path) -> str:
    """``file`` relative to ``folder`` with ``/`` separators: what the keys are seeded with.
    A file outside the folder keeps its ``..`` steps, which move with the folder."""
    return Path(os.path.relpath(Path(file), Path(folder))).as_posix()
