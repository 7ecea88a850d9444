"""The helper that serves the app for a browser (app.dashboard.serve): it answers on the address
it gives, the process it started is gone once the block ends, and a server that cannot come up
in time is stopped and reported in one sentence, not left running."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from app.dashboard.serve import AppDidNotStart, free_port, healthy, running_app, start_app


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def streamlit_children() -> list[int]:
    """This process's children that run Streamlit (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"streamlit" in command:
            found.append(int(stat.parent.name))
    return found


def test_the_app_answers_while_served_and_is_gone_after(tmp_path):
    log = tmp_path / "server.log"
    # The health check needs no warehouse: a missing one only shows on a page.
    with running_app({"COMMON_GROUND_DB": str(tmp_path / "none.duckdb")}, log=log) as url:
        assert url.startswith("http://127.0.0.1:")
        assert healthy(url)
    assert not listening(url)
    assert not streamlit_children()
    assert log.exists()


def test_a_server_that_does_not_come_up_in_time_is_stopped():
    port = free_port()
    with pytest.raises(AppDidNotStart, match=rf"did not start on http://127.0.0.1:{port} within 0 s"):
        start_app({}, port=port, wait_s=0.01)
    assert not streamlit_children()
