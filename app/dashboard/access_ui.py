"""Sign-in, the viewer's access context and the audit trail, as the dashboard uses them.

The context is decided once per session (again only when the warehouse changes, so a dataset
loaded since is placed by the same rules) and kept in ``st.session_state``; pages read it with
``current_access()`` and ask ``access.may(ctx, ...)`` what they may show. Downloads go through
``download_button``, which writes the audit line when the file is fetched, and refuses the file
when the line cannot be written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping

import streamlit as st

from app import access, audit
from app.access import LOCAL, AccessContext
from app.db import version, warehouse_path

log = logging.getLogger(__name__)

_CTX_KEY = "_access_context"
_SEEN_KEY = "_access_audited"


def auth_configured() -> bool:
    """Whether ``.streamlit/secrets.toml`` has an ``[auth]`` section (sign-in is required)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than answer False
        return False


def trail_path():
    return audit.audit_path(warehouse_path())


def current_access() -> AccessContext:
    """This session's context, for pages and the sidebar. It decides anew when nothing is held
    yet (the sign-in or refusal page is drawn and the run stops): a page that runs without the
    entry point having run first still never shows anything to someone not let in."""
    return viewer()


def require(page: str) -> AccessContext:
    """The viewer's context, once it is sure they may open ``page``. The menu offers only the
    pages a role may open, but a page can still be reached by a typed or stale link, so each
    page asks for itself: otherwise one refusal line is drawn and the run stops."""
    ctx = current_access()
    if not access.may(ctx, page):
        st.error("This page is not open to your role; the menu lists the pages that are.")
        st.stop()
    return ctx


def _datasets():
    from app.dashboard import ui

    return access.datasets_frame(ui.warehouse())


def _refuse(title: str, sentence: str, sign_out: bool = False) -> None:
    st.title(title)
    st.write(sentence)
    if sign_out and st.button("Sign out", key="deny_sign_out"):
        st.session_state.pop(_CTX_KEY, None)
        st.logout()
    st.stop()


def _record_once(key: str, action: str, ctx: AccessContext, *, strict: bool, **fields) -> None:
    """Write an audit line the first time this session does ``key``. Signed in, a line that
    cannot be written stops the page (nothing unrecorded is shown); in local mode it is a
    warning, as the one local user is also the one who can read the warehouse file."""
    seen = st.session_state.setdefault(_SEEN_KEY, set())
    if key in seen:
        return
    try:
        audit.record(trail_path(), action, ctx, **fields)
    except (audit.AuditError, ValueError) as exc:
        log.error("%s", exc)
        if strict:
            _refuse(
                "Common Ground",
                "The audit trail cannot be written, so nothing can be shown; tell your administrator.",
            )
        st.warning("The audit trail cannot be written; this view is not recorded.")
    seen.add(key)


def viewer(datasets: Callable[[], object] = _datasets) -> AccessContext:
    """Who is looking, deciding it once per session. Without ``[auth]`` and without an access
    file: local mode. Otherwise a person must sign in and be granted by the access file; the
    sign-in page, a refusal, or a problem with the set-up is drawn here and the run stops.
    ``datasets`` gives the warehouse's datasets frame (id, agency, sharing)."""
    path = access.access_path()
    # Signed in, no figure of this run may be asked for without the viewer's context.
    access.require_viewer(auth_configured())
    if not auth_configured():
        if path is not None:
            _refuse(
                "Common Ground",
                "An access file is set but sign-in is not configured, so nobody can be let in; "
                "an administrator must add an [auth] section to .streamlit/secrets.toml.",
            )
        return LOCAL
    if not st.user.is_logged_in:
        st.title("Common Ground")
        st.write("Sign in with your organisation's account to see the data your agency may see.")
        if st.button("Sign in", type="primary", key="sign_in"):
            st.login()
        st.stop()
    claims = st.user.to_dict()
    email = str(claims.get("email") or "").strip().lower() or None
    stamp = version(warehouse_path()) if warehouse_path().exists() else None
    held = st.session_state.get(_CTX_KEY)
    if held and held[0] == email and held[1] == stamp:
        return held[2]
    if path is None:
        _refuse(
            "Access not configured",
            "Sign-in is configured but no access file is set (COMMON_GROUND_ACCESS), so nobody "
            "is let in; tell your administrator.",
            sign_out=True,
        )
    try:
        ctx = access.resolve(access.load_access(path), datasets(), email, claims)
    except access.AccessError as exc:
        log.error("access file: %s", exc)
        _refuse(
            "Access not available",
            "The access file has a mistake, so nobody is let in until an administrator corrects it.",
            sign_out=True,
        )
    who = AccessContext(email=email or str(claims.get("sub", "unknown")), role="none", local=False)
    if ctx is None:
        _record_once(f"denied:{email}", "sign-in denied", who, strict=False)
        _refuse(
            "No access",
            f"The account {email or 'you signed in with'} is not granted access to Common Ground; "
            "ask your administrator to add it to the access file.",
            sign_out=True,
        )
    _record_once(f"sign-in:{email}", "sign-in", ctx, strict=True, what=ctx.grant)
    st.session_state[_CTX_KEY] = (email, stamp, ctx)
    return ctx


def account(ctx: AccessContext) -> None:
    """The sidebar's account line and sign-out button, or the local-mode line."""
    if ctx.local:
        st.caption(
            "Local mode: no sign-in, one analyst with every right. Configure sign-in "
            "(.streamlit/secrets.toml) and an access file to share the dashboard."
        )
        return
    from app.dashboard.ui import plain  # names from the access file and the provider, as text

    with st.sidebar:
        role = ctx.role.replace("_", " ")
        st.caption(plain(f"Signed in as {ctx.email} · {ctx.agency} · {role}"))
        if st.button("Sign out", key="sign_out"):
            st.session_state.pop(_CTX_KEY, None)
            st.session_state.pop(_SEEN_KEY, None)
            st.logout()


def record_view(ctx: AccessContext, page: str, described: Mapping, restricted: list[str]) -> None:
    """A view that shows restricted datasets: one line per page and filter per session."""
    if not restricted:
        return
    key = (
        "view:"
        + hashlib.sha256(json.dumps([page, described], sort_keys=True, default=str).encode()).hexdigest()
    )
    _record_once(
        key, "view", ctx, strict=not ctx.local, what=page, filter=described, extra={"restricted": restricted}
    )


def record_action(
    action: str, *, what: str, files=(), filter: Mapping | None = None, extra: Mapping | None = None
) -> bool:
    """Record an action a page performs (an upload, a load from the page and its outcome) for
    this viewer. Returns False, after saying so in one line, when the line cannot be written:
    the page must then not go ahead."""
    try:
        audit.record(
            trail_path(), action, current_access(), what=what, files=files, filter=filter, extra=extra
        )
    except (audit.AuditError, ValueError) as exc:
        log.error("%s", exc)
        st.error("The audit trail cannot be written, so this cannot be done now; tell your administrator.")
        return False
    return True


def download_button(
    label: str,
    data: bytes | str | Callable[[], bytes | str],
    file_name: str,
    mime: str,
    *,
    key: str,
    what: str,
    filter: Mapping | None = None,
    rows: int | None = None,
    ctx: AccessContext | None = None,
    help: str | None = None,
) -> None:
    """``st.download_button`` whose file is made when it is fetched, with an audit line naming
    the file, its rows and SHA-256. If the line cannot be written the file is not served."""
    ctx = ctx or current_access()
    path = trail_path()
    described = dict(filter) if filter is not None else None
    st.download_button(
        label,
        audited(data, path, ctx, file_name=file_name, what=what, filter=described, rows=rows),
        file_name=file_name,
        mime=mime,
        key=key,
        on_click="ignore",
        help=help,
    )


def audited(
    data: bytes | str | Callable[[], bytes | str],
    path,
    ctx: AccessContext,
    *,
    file_name: str,
    what: str,
    filter: Mapping | None,
    rows: int | None,
) -> Callable[[], bytes]:
    """The callable a download button runs when clicked: the file's bytes, recorded first.
    It runs outside the page's script, so it takes everything it needs as arguments."""

    def make() -> bytes:
        body = data() if callable(data) else data
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        audit.record(
            path, "download", ctx, what=what, filter=filter, files=[audit.bytes_entry(file_name, raw, rows)]
        )
        return raw

    return make
