"""The dashboard served as its own process on 127.0.0.1, for a browser to look at: the end-to-end
tests, the browser benchmarks and anyone who wants the app on a free port with a given warehouse,
catalogue, access file or secrets. It starts ``streamlit run`` on the entry point, waits until
Streamlit's health check answers, and stops the process it started (and only that one).

Only ``subprocess`` is needed here: the server is a child process, so this module never imports
Streamlit itself and starting a server costs the caller nothing but the child.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "app" / "dashboard" / "streamlit_app.py"
# Debian's Chromium and the flags that let it run headless here: no GPU (WebGL is drawn in
# software), no sandbox (it refuses to start as root with one), no network of its own.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class AppDidNotStart(RuntimeError):
    """The server did not answer its health check in time (its process has been stopped)."""


def free_port() -> int:
    """A TCP port nobody listens on now on 127.0.0.1 (the OS picks it). Known before the start,
    so a caller can write it into the secrets' sign-in redirect address first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    """Streamlit's own health check answers ``ok``."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.read() == b"ok"
    except OSError:
        return False


def start_app(
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    secrets: Path | None = None,
    wait_s: float = 90,
    log: Path | None = None,
) -> tuple[subprocess.Popen, str]:
    """Start the app and return its process and its address once it is healthy.

    ``env`` is added to this process's environment (``COMMON_GROUND_DB``, ``_CATALOG``,
    ``_ACCESS``, ``_AUDIT``...); ``secrets`` names a ``secrets.toml`` (the sign-in settings);
    ``log`` keeps the server's output (it is discarded otherwise, so a full pipe never stalls
    it). Raises ``AppDidNotStart`` after ``wait_s`` seconds, having stopped the process."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if secrets is not None:
        command += ["--secrets.files", str(secrets)]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the child holds it)
    try:
        proc = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        if log is not None:
            out.close()  # the child has its own copy of the descriptor
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if healthy(url):
            return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    stop_app(proc)
    raise AppDidNotStart(f"The app did not start on {url} within {wait_s:.0f} s.")


def stop_app(proc: subprocess.Popen, wait_s: float = 30) -> None:
    """Stop the server this module started: politely first, then for good."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=wait_s)


@contextmanager
def running_app(env: Mapping[str, str] | None = None, **options: Any) -> Iterator[str]:
    """The app's address while it runs; it is stopped on leaving. ``options`` are
    ``start_app``'s: ``port``, ``secrets``, ``wait_s``, ``log``."""
    proc, url = start_app(env, **options)
    try:
        yield url
    finally:
        stop_app(proc)
