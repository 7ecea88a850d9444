"""Ward profiles made ready while a map is looked at.

The first ward clicked under a filter pays for what every ward's profile shares (the
briefing's ranking and windows, the areas of demand, the early warnings: about 2 s of server
time on the demo city, against under 1 s for every ward after it). A councillor looks at the
map before clicking a ward, so once a map has been drawn and its session has asked for nothing
else for ``IDLE_S``, a background thread computes those shared parts into the pages' caches
(``cached.ward_profiles_shared``), and the click finds them there; clicking sooner waits on the
same computation rather than repeating it (Streamlit holds one lock per cached value).

The work is bounded: one warm-up runs at a time in the process, a session's request is dropped
when it has asked for another view since, and a view made ready is not made ready again for
as long as the pages' caches keep it. A failure is logged and forgotten: the page computes
the parts itself, as it would have.
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
READY_S = 600  # how long a view made ready stays so: the pages' caches keep values as long
_KEPT = 64  # views remembered as made ready (the pages' caches hold about as many)

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_one_at_a_time = threading.Semaphore(1)
_latest: dict[str, tuple] = {}  # session -> the view it asked for last, while not yet begun
_ready: OrderedDict[tuple, float] = OrderedDict()  # view -> when it was made ready


def ward_profiles(stamp, f: Filter, res: int, k: int) -> None:
    """Make the ward profiles of this view ready in the background, unless they are already
    (called by the map page once it has drawn)."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    key = (tuple(stamp), f, int(res), int(k))
    with _lock:
        if _is_ready(key):
            _latest.pop(ctx.session_id, None)  # an earlier view's pending warm-up is dropped too
            return
        _latest[ctx.session_id] = key
    thread = threading.Thread(target=_run, args=(ctx.session_id, key), name="warm-ward-profiles", daemon=True)
    add_script_run_ctx(thread, ctx)  # the session's state: its viewer and pinned warehouse
    thread.start()


def _is_ready(key: tuple) -> bool:
    """Whether ``key`` was made ready within ``READY_S`` (called holding ``_lock``)."""
    made = _ready.get(key)
    return made is not None and time.monotonic() - made < READY_S


def _run(session: str, key: tuple) -> None:
    time.sleep(IDLE_S)
    with _lock:
        if _latest.get(session) != key:  # the session has asked for another view since
            return
    with _one_at_a_time:
        with _lock:
            if _latest.get(session) != key:
                return
            del _latest[session]  # begun: nothing of this session is pending any more
            if _is_ready(key):  # another session's warm-up made it ready meanwhile
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
            _ready[key] = time.monotonic()
            _ready.move_to_end(key)
            while len(_ready) > _KEPT:
                _ready.popitem(last=False)
