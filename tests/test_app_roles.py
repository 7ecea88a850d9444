"""The dashboard as each role of each agency sees it, through streamlit.testing with a faked
signed-in user (``AppTest.user``) and an ``[auth]`` section (``AppTest.secrets``): which pages,
which datasets, and no trace of a restricted dataset for an agency it is not released to."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import REPO, map_decks
from streamlit.testing.v1 import AppTest

from app import audit

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret",
    "client_id": "common-ground",
    "client_secret": "test-secret",
    "server_metadata_url": "http://127.0.0.1:9400/.well-known/openid-configuration",
}
ACCESS = """
agencies = ["Fairhaven Police", "Fairhaven City Council", "Fairhaven Children's Services",
            "Fairhaven Fire and Rescue"]

[[grant]]
domain = "police.example"
agency = "Fairhaven Police"
role = "analyst"

[[grant]]
email = "admin@police.example"
agency = "Fairhaven Police"
role = "administrator"

[[grant]]
claim = { agency = "council", roles = "councillor" }
agency = "Fairhaven City Council"
role = "councillor"

[[grant]]
claim = { agency = "council", roles = "service_manager" }
agency = "Fairhaven City Council"
role = "service_manager"

[[grant]]
domain = "children.example"
agency = "Fairhaven Children's Services"
role = "analyst"

[[grant]]
claim = { agency = "fire", roles = "councillor" }
agency = "Fairhaven Fire and Rescue"
role = "councillor"

[[grant]]
domain = "fire.example"
agency = "Fairhaven Fire and Rescue"
role = "service_manager"

[datasets.early_help]
released_to = ["Fairhaven City Council"]
"""
# The restricted dataset's own categories (data/catalog.toml, app/demo_city.py).
EARLY_HELP_WORDS = (
    "early_help",
    "early-help",
    "Children's Services",
    "Parenting support",
    "School attendance",
    "Domestic abuse",
    "Neglect concern",
)


@pytest.fixture
def env(small_demo_db, tmp_path, monkeypatch):
    return signed_in_setting(small_demo_db, tmp_path, monkeypatch)


def signed_in_setting(small_demo_db, tmp_path, monkeypatch):
    """The small demo, the access file above and an audit trail of its own, for one test."""
    db, _ = small_demo_db
    path = tmp_path / "access.toml"
    path.write_text(textwrap.dedent(ACCESS), encoding="utf-8")
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    monkeypatch.setenv("COMMON_GROUND_ACCESS", str(path))
    monkeypatch.setenv("COMMON_GROUND_AUDIT", str(tmp_path / "audit.jsonl"))
    return tmp_path


def run(user: dict | None, page: str | None = None, auth: bool = True, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if auth:
        at.secrets["auth"] = AUTH
    if user is not None:
        at.user = user
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def signed_in(email: str | None = None, **claims) -> dict:
    user = {"is_logged_in": True, "sub": email or "user-1", **claims}
    if email:
        user["email"] = email
    return user


def pages(at: AppTest) -> list[str]:
    """The registered pages' URL paths; the default page (the map) is served at the root."""
    return sorted(str(i.get("url_pathname") or "map") for i in at._registered_pages.values())


def texts(at: AppTest) -> str:
    """Everything a page wrote, widget options and labels included, as one string."""
    parts = [
        str(e.value)
        for kind in ("markdown", "caption", "title", "subheader", "warning", "info", "error")
        for e in getattr(at, kind)
    ]
    for box in [*at.multiselect, *at.selectbox, *at.radio]:
        parts += [str(o) for o in box.options] + [str(box.label)]
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    for chart in at.get("plotly_chart"):
        parts.append(chart.proto.spec)
    for deck in map_decks(at):
        parts.append(json.dumps(deck))
    return "\n".join(parts)


def trail(env) -> list[dict]:
    return list(audit.entries(env / "audit.jsonl"))


def test_not_signed_in_sees_only_the_sign_in_page(env):
    at = run({"is_logged_in": False})
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.multiselect and not at.dataframe


def test_an_account_without_a_grant_is_refused_and_recorded(env):
    at = run(signed_in("someone@elsewhere.example"))
    assert at.title[0].value == "No access"
    assert "someone@elsewhere.example is not granted access" in at.markdown[0].value
    assert not at.multiselect and not at.dataframe
    assert [(e["action"], e["who"]) for e in trail(env)] == [("sign-in denied", "someone@elsewhere.example")]


def test_an_unverified_address_is_refused(env):
    at = run(signed_in("a@police.example", email_verified=False))
    assert at.title[0].value == "No access"


def test_an_access_file_without_sign_in_lets_nobody_in(env):
    at = run(None, auth=False)
    assert "sign-in is not configured" in at.markdown[0].value
    assert not at.multiselect


def test_sign_in_without_an_access_file_lets_nobody_in(env, monkeypatch):
    monkeypatch.delenv("COMMON_GROUND_ACCESS")
    at = run(signed_in("a@police.example"))
    assert at.title[0].value == "Access not configured"


def test_a_broken_access_file_lets_nobody_in_and_says_so_in_one_sentence(env):
    (env / "access.toml").write_text('agencies = ["x"]\n[[grant]]\nrole = "king"\n')
    at = run(signed_in("a@police.example"))
    assert at.title[0].value == "Access not available"
    assert "role" not in at.markdown[0].value and str(env) not in texts(at)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (signed_in(None, agency="council", roles=["councillor"]), ["hotspots", "map", "ward"]),
        (
            signed_in(None, agency="council", roles=["service_manager"]),
            ["early_warning", "hotspots", "map", "priorities", "ward"],
        ),
        (signed_in("a@police.example"), ["data", "early_warning", "hotspots", "map", "priorities", "ward"]),
        (
            signed_in("admin@police.example"),
            ["admin", "data", "early_warning", "hotspots", "map", "priorities", "ward"],
        ),
    ],
)
def test_each_role_is_offered_its_pages(env, user, expected):
    at = run(user)
    assert pages(at) == expected
    assert any("Signed in as" in c.value for c in at.sidebar.caption)
    assert [b.label for b in at.sidebar.button] == ["Sign out"]


def test_a_role_cannot_open_a_page_it_is_not_offered(env):
    at = run(signed_in(None, agency="council", roles=["councillor"]))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/data.py")


def test_sign_in_is_recorded_once_per_session(env):
    at = run(signed_in("a@police.example"))
    at.run()
    entries = [e for e in trail(env) if e["action"] == "sign-in"]
    assert len(entries) == 1
    assert (entries[0]["who"], entries[0]["agency"], entries[0]["role"]) == (
        "a@police.example",
        "Fairhaven Police",
        "analyst",
    )


def test_local_mode_says_so_once_and_offers_every_page(small_demo_db, monkeypatch, tmp_path):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))
    monkeypatch.delenv("COMMON_GROUND_ACCESS", raising=False)
    monkeypatch.setenv("COMMON_GROUND_AUDIT", str(tmp_path / "audit.jsonl"))
    at = run(None, auth=False)
    assert pages(at) == ["admin", "data", "early_warning", "hotspots", "map", "priorities", "ward"]
    assert sum("Local mode" in c.value for c in at.caption) == 1
    at.switch_page("screens/admin.py").run()
    assert not at.exception
    assert any("No access file is set" in i.value for i in at.info)
    # The default view holds the restricted dataset: viewing it was recorded, and the page shows it.
    assert any("audit trail intact" in s.value for s in at.success)
    assert "view" in set(at.dataframe[-1].value["action"])


@pytest.mark.parametrize(
    ("user", "sees_early_help"),
    [
        (signed_in("a@police.example"), False),
        (signed_in("x@fire.example"), False),
        (signed_in(None, agency="council", roles=["councillor"]), True),  # released to the council
        (signed_in("a@children.example"), True),  # its owner
    ],
)
def test_the_restricted_dataset_only_where_released(env, user, sees_early_help):
    for page in ("screens/map.py", "screens/hotspots.py", "screens/ward.py"):
        at = run(user, page)
        offered = at.sidebar.multiselect[0].options
        assert any("early-help referrals" in o for o in offered) == sees_early_help, page
        if not sees_early_help:
            shown = texts(at)
            assert not any(word in shown for word in EARLY_HELP_WORDS), page


@pytest.mark.parametrize("param", ["ds", "cat"])
def test_a_link_naming_the_restricted_dataset_shows_no_trace_of_it(env, param):
    """A police analyst edits the link to name early_help (or one of its categories): the note
    reads as for a dataset that does not exist, and nothing of it is drawn."""
    value = "early_help" if param == "ds" else "Neglect concern"
    police = run(signed_in("a@police.example"), "screens/map.py", **{param: value, "layers": "wards,density"})
    nowhere = run(
        signed_in("a@police.example"), "screens/map.py", **{param: "no_such_x", "layers": "wards,density"}
    )
    said = " ".join(w.value for w in police.warning)
    assert said.replace(value, "X") == " ".join(w.value for w in nowhere.warning).replace(
        "no\\_such\\_x", "X"
    )
    shown = texts(police).replace(value, "")
    assert not any(word in shown for word in EARLY_HELP_WORDS)


def test_a_released_restricted_view_is_recorded(env):
    run(signed_in(None, agency="council", roles=["service_manager"]), "screens/map.py")
    views = [e for e in trail(env) if e["action"] == "view"]
    assert (
        views and views[0]["restricted"] == ["early_help"] and views[0]["agency"] == "Fairhaven City Council"
    )
    assert json.dumps(views[0]["filter"])


def test_a_download_is_recorded_when_fetched_and_refused_when_it_cannot_be(tmp_path):
    """``access_ui.download_button`` hands Streamlit this callable: it runs on the click."""
    from app.access import AccessContext
    from app.dashboard import access_ui

    ctx = AccessContext(email="a@police.example", agency="Fairhaven Police", role="analyst", local=False)
    path = tmp_path / "audit.jsonl"
    made = []
    fetch = access_ui.audited(
        lambda: made.append(1) or "a,b\n1,2\n",
        path,
        ctx,
        file_name="hexes.csv",
        what="hexes",
        filter={"datasets": ["police_crime"]},
        rows=1,
    )
    assert made == [] and not path.exists()  # nothing is made or recorded until it is fetched
    assert fetch() == b"a,b\n1,2\n"
    (entry,) = audit.entries(path)
    assert (entry["action"], entry["who"], entry["what"]) == ("download", "a@police.example", "hexes")
    assert entry["files"] == [audit.bytes_entry("hexes.csv", b"a,b\n1,2\n", 1)]
    blocked = tmp_path / "file"
    blocked.write_text("")
    refused = access_ui.audited(
        b"x", blocked / "audit.jsonl", ctx, file_name="x", what="x", filter=None, rows=0
    )
    with pytest.raises(audit.AuditError):
        refused()


def test_signed_in_a_figure_asked_without_the_viewer_is_refused(small_demo_db):
    """Fail closed: where people sign in, a figure asked for with no context or the local
    user's (a forgotten argument) is refused at the door to the data, not served whole."""
    from app import aggregate
    from app.access import AccessContext, MissingViewer, require_viewer
    from app.filters import Filter
    from app.warehouse import open_readonly

    police = AccessContext(
        email="a@police.example", agency="Fairhaven Police", visible=("police_crime",), local=False
    )
    with open_readonly(small_demo_db[0]) as con:
        require_viewer(True)
        try:
            with pytest.raises(MissingViewer):
                aggregate.ward_aggregate(con, Filter())
            assert len(aggregate.ward_aggregate(con, Filter(access=police)))
        finally:
            require_viewer(False)
        assert len(aggregate.ward_aggregate(con, Filter()))  # local mode: the one user sees all


def test_every_signed_in_run_requires_the_viewer_and_a_local_one_does_not(env, small_demo_db, monkeypatch):
    def script():
        import streamlit as st

        from app import access
        from app.dashboard import access_ui

        access_ui.current_access()
        st.write(f"required={access._viewer_required.get()}")

    at = AppTest.from_function(script, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = signed_in("a@police.example")
    at.run()
    assert [m.value for m in at.markdown] == ["required=True"]
    monkeypatch.delenv("COMMON_GROUND_ACCESS")
    local = AppTest.from_function(script, default_timeout=60).run()
    assert [m.value for m in local.markdown] == ["required=False"]
