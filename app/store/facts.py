"""Catalogue facts of an opened store folder, worked out once and kept while it is open.

A map's hex or ward aggregate asks the same small questions many times over (which relations
the store holds, the datasets as a viewer sees them, each dataset's categories and agencies):
a dozen catalogue queries per aggregate, each costing more than the count itself once the
count comes from the roll-up. A store folder opens as an in-memory database that nothing
writes to after ``open_store`` (``app.store.duckdb``), so its answers never change while it is
open and can be kept.

The same holds for a warehouse file opened read-only (``app.warehouse.connect``): an
in-memory database with the file attached read-only, which goes on reading the file it opened
even when a load renames a new one into place (the dashboard then opens a new connection). A
warehouse opened for writing has no facts and is asked every time: a load writes through it.

The dashboard reads through a new cursor per call, and a cursor is a Python object of its
own on the same database; so the facts are found through a token table the in-memory
database holds (one catalogue lookup per new cursor), then remembered per cursor.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import duckdb

TOKEN_PREFIX = "__store_token_"

T = TypeVar("T")


class Facts:
    """The remembered answers of one opened store, by question."""

    def __init__(self) -> None:
        self._values: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        """The answer to ``key``, computed by ``compute`` the first time it is asked."""
        try:
            return self._values[key]
        except KeyError:
            pass
        value = compute()
        with self._lock:
            return self._values.setdefault(key, value)


# A connection or cursor object -> its store's facts (None: not a store); weakly, so a closed
# and dropped cursor leaves nothing behind. Each store's facts live as long as its connection.
_BY_CONNECTION: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BY_TOKEN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_kept = True  # False inside ``bypassed``


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """Ask every question afresh inside the block, as for a warehouse file: for measuring what
    keeping the answers saves (``bench/query.py``), never for serving."""
    global _kept
    _kept = False
    try:
        yield
    finally:
        _kept = True


def mark(con: duckdb.DuckDBPyConnection) -> None:
    """Give the store or read-only warehouse just opened on ``con`` (an in-memory database of
    its own) its facts, and a token table through which its cursors find them."""
    token = uuid.uuid4().hex  # hexadecimal digits only: safe inside an identifier
    # In the in-memory database, whichever database the connection uses (a warehouse: the file).
    con.execute(f"CREATE TABLE memory.main.{TOKEN_PREFIX}{token} (token VARCHAR)")
    facts = Facts()
    _BY_TOKEN[token] = facts
    _BY_CONNECTION[con] = facts  # the connection holds its facts alive


def of(con: duckdb.DuckDBPyConnection) -> Facts | None:
    """The facts of the store or read-only warehouse ``con`` reads (its connection or a cursor
    on it), or None for anything else (a warehouse open for writing: asked afresh every time)."""
    try:
        return _BY_CONNECTION[con]
    except KeyError:
        pass
    except TypeError:  # not weakly referable: ask afresh
        return None
    # A catalogue function, never a query that could fail: a failed statement would abort a
    # transaction the caller holds open.
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE starts_with(table_name, ?) AND database_name = 'memory'",
        [TOKEN_PREFIX],
    ).fetchall()
    facts = _BY_TOKEN.get(rows[0][0][len(TOKEN_PREFIX) :]) if len(rows) == 1 else None
    _BY_CONNECTION[con] = facts
    return facts


def remembered(con: duckdb.DuckDBPyConnection, key: Any, compute: Callable[[], T]) -> T:
    """``compute()``, kept under ``key`` when ``con`` reads a store folder or a warehouse file
    read-only."""
    facts = of(con) if _kept else None
    return compute() if facts is None else facts.get(key, compute)


def access_key(access) -> tuple:
    """What of an ``AccessContext`` (or None) decides a catalogue answer: the datasets the
    viewer may see and those they see exactly."""
    return (getattr(access, "visible", None), tuple(getattr(access, "exact", ()) or ()))
