"""Access and audit (administrators): who may sign in and as what, which agencies restricted
datasets are released to, what each role may do, and the audit trail with its chain check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import access, audit
from app.dashboard import access_ui, ui

access_ui.require("admin")  # a hand-typed URL: the menu offers the page to administrators only
view = ui.current_view()
st.title("Access and audit")
st.caption(
    "This page names every dataset and every agency's activity, restricted ones included: it is "
    "for the Office's information-governance staff, who keep the data-sharing agreements."
)

st.subheader("Access file")
path = access.access_path()
if path is None:
    st.info(
        "No access file is set (COMMON_GROUND_ACCESS): the dashboard runs in local mode, one "
        "analyst with every right."
    )
else:
    try:
        summary = access.load_access(path).summary()
    except access.AccessError as exc:
        st.error(
            f"The access file has {len(exc.problems)} problem(s); nobody is let in until they are fixed."
        )
        st.code("\n".join(p.replace(f"{path}: ", "") for p in exc.problems), language=None)
    else:
        st.caption(f"{path.name} · {len(summary['agencies'])} agencies · {len(summary['grants'])} grants")
        st.dataframe(pd.DataFrame(summary["grants"]), hide_index=True, width="stretch", key="grants")
        releases = [{"dataset": k, "released to": ", ".join(v)} for k, v in summary["released_to"].items()]
        st.markdown("**Restricted datasets released to other agencies**")
        if releases:
            st.dataframe(pd.DataFrame(releases), hide_index=True, width="stretch", key="releases")
        else:
            st.caption("None: each restricted dataset is seen by its own agency only.")

st.subheader("Roles")
st.dataframe(
    pd.DataFrame(
        [{"role": r["role"].replace("_", " "), "adds": ", ".join(r["adds"])} for r in access.roles_table()]
    ),
    hide_index=True,
    width="stretch",
    key="roles",
)

st.subheader("Audit trail")
trail = access_ui.trail_path()
verdict = audit.verify(trail)
(st.success if verdict.ok else st.error)(verdict.describe())
rows = list(audit.entries(trail))
if rows:
    shown = pd.DataFrame(
        [
            {
                "when": e.get("when"),
                "who": e.get("who"),
                "agency": e.get("agency"),
                "role": e.get("role"),
                "action": e.get("action"),
                "what": e.get("what"),
                "files": ", ".join(str(f.get("name")) for f in e.get("files") or ()),
            }
            for e in reversed(rows[-1000:])
        ]
    )
    st.caption(f"The latest {len(shown):,} of {len(rows):,} entries, newest first.")
    st.dataframe(shown, hide_index=True, width="stretch", key="audit_table")
    access_ui.download_button(
        "Download the audit trail (JSON lines)",
        lambda: trail.read_bytes(),
        file_name="audit.jsonl",
        mime="application/jsonl",
        key="audit_download",
        what="audit trail",
        rows=len(rows),
    )
else:
    st.caption("No entries yet.")
