"""Ward profiles made ready while a map is looked at.

The first ward clicked under a filter pays for what every ward's profile shares (the
briefing's ranking and windows, the areas of demand, the early warnings: about 2 s of server
time on the demo city, against under 1 s for every ward after it). A councillor looks at the
map before clicking a ward, so once a map has been drawn and its session has asked for nothing
else for ``IDLE_S``, a background thread computes those shared parts into the pages' caches
(``cached.ward_profiles_shared``), and the click finds them there; clicking sooner waits on the
same computation rather than repeating it (Streamlit holds one lock per cached value).

The work is bounded: one warm-up runs at a time in the process, a session's request is dropped
when it has asked for another view since, and a view already made ready is not made ready
again. A failure is logged and forgotten: the page computes the parts itself, as it would have.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from app.filters import Filter

IDLE_S = 1.0  # how long a map must be left alone before its ward profiles are made ready
_KEPT = 64  # views remembered as made ready (the pages' caches hold about as many)

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_one_at_a_time = threading.Semaphore(1)
_latest: dict[str, tuple] = {}  # session -> the view it last asked to make ready
_ready: OrderedDict[tuple, None] = OrderedDict()


def ward_profiles(stamp, f: Filter, res: int, k: int) -> None:
    """Make the ward profiles of this view ready in the background, unless they are already
    (called by the map page once it has drawn)."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    key = (tuple(stamp), f, int(res), int(k))
    with _lock:
        if key in _ready:
            return
        _latest[ctx.session_id] = key
    thread = threading.Thread(target=_run, args=(ctx.session_id, key), name="warm-ward-profiles", daemon=True)
    add_script_run_ctx(thread, ctx)  # the session's state: its viewer and pinned warehouse
    thread.start()


def _wanted(session: str, key: tuple) -> bool:
    with _lock:
        return _latest.get(session) == key and key not in _ready


def _run(session: str, key: tuple) -> None:
    time.sleep(IDLE_S)
    if not _wanted(session, key):
        return
    with _one_at_a_time:
        if not _wanted(session, key):
            return
        from app.dashboard import cached

        try:
            cached.ward_profiles_shared(*key)
        except ScriptControlException:  # a load put a new warehouse in place: the page follows it
            return
        except Exception:  # the page computes the parts itself, as it would have
            _log.warning("making the ward profiles ready failed", exc_info=True)
            return
        with _lock:
            _ready[key] = None
            while len(_ready) > _KEPT:
                _ready.popitem(last=False)
            if _latest.get(session) == key:
                del _latest[session]
