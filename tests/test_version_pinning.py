"""One run of a page reads one warehouse version: a load that renames a new file into place
while the page is being drawn changes nothing in that run (its cached figures, its uncached
queries and its provenance line all read the version the run began with), and the next run
reads the new one. A cached figure is never stored under a version it was not computed on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.db import version
from app.warehouse import connect

DROPPED = "fire_incidents"  # a dataset the "reloaded" warehouse no longer has


def _mid_run_reload():
    """A page: pins its version as the sidebar does, then a load lands, then it reads."""
    import os

    import streamlit as st

    from app.dashboard import cached, ui
    from app.filters import Filter

    stamp = ui.pin_version()
    nxt = os.environ["NEXT_WAREHOUSE"]
    if os.path.exists(nxt):
        os.replace(nxt, os.environ["COMMON_GROUND_DB"])  # the load's rename, mid-run
    uncached = ui.warehouse().execute("SELECT list(id ORDER BY id) FROM datasets").fetchall()[0][0]
    st.session_state["seen"] = {
        "stamp": stamp,
        "version": ui.db_version(),
        "cached": sorted(cached.selected_ids(ui.db_version(), Filter())),
        "uncached": uncached,
    }


def _pin_only():
    import streamlit as st

    from app.dashboard import ui

    stamp = ui.pin_version()
    ids = ui.warehouse(stamp).execute("SELECT list(id ORDER BY id) FROM datasets").fetchall()[0][0]
    st.session_state["seen"] = {"stamp": stamp, "ids": ids}


@pytest.fixture
def two_versions(small_demo_db, tmp_path, monkeypatch) -> tuple[Path, Path, list[str]]:
    """The warehouse, and the file a reload would rename over it: the same less one dataset."""
    db = tmp_path / "warehouse.duckdb"
    shutil.copy(small_demo_db[0], db)
    nxt = tmp_path / "next.duckdb"
    shutil.copy(db, nxt)
    con = connect(nxt)
    ids = [r[0] for r in con.execute("SELECT id FROM datasets ORDER BY id").fetchall()]
    assert DROPPED in ids
    files = "SELECT file_no FROM event_files WHERE dataset = $d"
    con.execute(f"DELETE FROM event_rows WHERE file_no IN ({files})", {"d": DROPPED})
    con.execute("DELETE FROM event_files WHERE dataset = $d", {"d": DROPPED})
    con.execute("DELETE FROM datasets WHERE id = $d", {"d": DROPPED})
    con.execute("CHECKPOINT")
    con.close()
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    monkeypatch.setenv("NEXT_WAREHOUSE", str(nxt))
    return db, nxt, ids


def test_a_reload_during_a_run_changes_nothing_in_that_run(two_versions):
    db, _, ids = two_versions
    before = version(db)
    at = AppTest.from_function(_mid_run_reload, default_timeout=60).run()
    assert not at.exception, at.exception
    seen = at.session_state["seen"]
    assert version(db) != before  # the new file is in place
    # The cache missed during the run: it computed on the version it is keyed by, not the new file.
    assert seen["stamp"] == seen["version"] == before
    assert seen["cached"] == ids and seen["uncached"] == ids

    at.run()  # the next run reads the new version, from the cache entry of that version
    seen = at.session_state["seen"]
    assert seen["stamp"] == version(db)
    assert DROPPED not in seen["cached"] and DROPPED not in seen["uncached"]
    assert seen["cached"] == seen["uncached"]


def test_a_connection_is_never_kept_under_a_version_it_does_not_read(two_versions, monkeypatch):
    """The version is read from the path, then the file is opened: a rename in between would
    pair the old version with the new file. The connection is refused and opened again."""
    from app.dashboard import ui

    db, nxt, _ = two_versions
    real = ui.open_readonly

    def renamed_while_opening(path):
        if nxt.exists():
            shutil.move(nxt, db)
        return real(path)

    monkeypatch.setattr(ui, "open_readonly", renamed_while_opening)
    at = AppTest.from_function(_pin_only, default_timeout=60).run()
    assert not at.exception, at.exception
    seen = at.session_state["seen"]
    assert seen["stamp"] == version(db)
    assert DROPPED not in seen["ids"]  # the connection pinned reads the version it is pinned as
