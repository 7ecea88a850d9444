"""Each page enforces its own rights, whatever the menu offers: a page reached by a typed link
refuses in one line, a councillor's hotspot and map pages hold no overlap view and no hotspot
layer (not even when a link asks for one), a partner agency's pickers, tables and files hold no
restricted dataset of another agency, and every file a page offers writes an audit line when it
is fetched. Roles are faked as in ``test_app_roles`` (``AppTest.user`` and an ``[auth]``)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, map_decks
from streamlit.testing.v1 import AppTest
from test_app_roles import ACCESS, AUTH, EARLY_HELP_WORDS, run, signed_in, signed_in_setting, texts, trail

from app.dashboard import access_ui

PAGES = REPO / "app" / "dashboard" / "screens"
COUNCILLOR = signed_in(None, agency="council", roles=["councillor"])
MANAGER = signed_in(None, agency="council", roles=["service_manager"])
FIRE_COUNCILLOR = signed_in(None, agency="fire", roles=["councillor"])  # early_help not released
POLICE = signed_in("a@police.example")  # a partner agency's analyst: early_help not released
HOTSPOT_LAYERS = {"hotspots", "emerging", "overlap", "interventions", "early_warning"}
PLAIN_LAYERS = {"wards", "density", "change", "outlines"}


@pytest.fixture
def env(small_demo_db, tmp_path, monkeypatch):
    return signed_in_setting(small_demo_db, tmp_path, monkeypatch)


@pytest.fixture
def fetched(monkeypatch):
    """The files the pages offer, as (file name, the callable Streamlit runs on a click): each
    is the real audited callable, so calling it is fetching the file."""
    offered: list[tuple[str, object]] = []
    real = access_ui.audited

    def keep(data, path, ctx, **kw):
        make = real(data, path, ctx, **kw)
        offered.append((kw["file_name"], make))
        return make

    monkeypatch.setattr(access_ui, "audited", keep)
    return offered


def layer_boxes(at: AppTest) -> set[str]:
    return {c.key.removeprefix("lp_on_") for c in at.checkbox if str(c.key).startswith("lp_on_")}


def drawn_layers(at: AppTest) -> set[str]:
    return {layer.get("id", "") for d in map_decks(at) for layer in d.get("layers", [])}


def downloads(at: AppTest) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


@pytest.mark.parametrize("page", ["priorities", "early_warning", "admin"])
def test_a_page_reached_directly_without_its_right_refuses_in_one_line(env, page):
    """The menu never offers these pages to a councillor; opened on their own (a typed link),
    each page asks for itself and shows nothing but one sentence."""
    at = AppTest.from_file(str(PAGES / f"{page}.py"), default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = COUNCILLOR
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "This page is not open to your role; the menu lists the pages that are."
    ]
    assert not at.title and not at.dataframe and not downloads(at)


def test_a_service_manager_reaching_a_page_directly_is_let_in(env):
    at = AppTest.from_file(str(PAGES / "early_warning.py"), default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = MANAGER
    at.run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Early warning"


def test_a_councillor_sees_no_overlap_section_and_links_open_no_hotspot_layer(env):
    councillor = run(COUNCILLOR, "screens/hotspots.py")
    said = [s.value for s in councillor.subheader]
    assert not any("coincide" in s for s in said)
    assert not councillor.get("plotly_chart")
    assert downloads(councillor) == ["Download hotspot areas (CSV)", "Download hotspot cells (CSV)"]
    links = " ".join(councillor.dataframe[0].value["Show on map"]) if councillor.dataframe else ""
    assert "hotspots" not in links and (not links or "density%2Coutlines" in links)

    manager = run(MANAGER, "screens/hotspots.py")
    assert any("coincide" in s.value for s in manager.subheader)
    links = " ".join(manager.dataframe[0].value["Show on map"]) if manager.dataframe else ""
    assert not links or "hotspots%2Coutlines" in links


def test_a_councillors_map_panel_holds_no_hotspot_layer(env):
    assert layer_boxes(run(COUNCILLOR, "screens/map.py")) == PLAIN_LAYERS
    assert layer_boxes(run(MANAGER, "screens/map.py")) >= PLAIN_LAYERS | HOTSPOT_LAYERS


@pytest.mark.parametrize("layer", sorted(HOTSPOT_LAYERS))
def test_a_councillors_link_naming_a_hotspot_layer_reads_as_naming_none(env, layer):
    """``?layers=overlap`` by a councillor: the note is the one a made-up layer gets, and
    nothing of the layer is drawn, offered or legended."""
    asked = run(COUNCILLOR, "screens/map.py", layers=f"wards,{layer}")
    made_up = run(COUNCILLOR, "screens/map.py", layers="wards,no_such_layer")
    assert [w.value.replace(layer.replace("_", "\\_"), "X") for w in asked.warning] == [
        w.value.replace("no\\_such\\_layer", "X") for w in made_up.warning
    ]
    assert layer not in layer_boxes(asked) and layer not in drawn_layers(asked)
    assert drawn_layers(asked) == drawn_layers(made_up)


@pytest.mark.parametrize("page", ["screens/map.py", "screens/hotspots.py", "screens/ward.py"])
def test_a_councillors_link_naming_a_restricted_dataset_leaves_no_trace(env, page):
    """A fire service councillor (early_help is not released to that agency) edits the link to
    name it: every page reads as for a dataset that does not exist."""
    asked = run(FIRE_COUNCILLOR, page, ds="early_help")
    made_up = run(FIRE_COUNCILLOR, page, ds="no_such_x")
    assert [w.value.replace("early\\_help", "X") for w in asked.warning] == [
        w.value.replace("no\\_such\\_x", "X") for w in made_up.warning
    ]
    shown = texts(asked).replace("early_help", "").replace("early\\_help", "")
    assert not any(word in shown for word in EARLY_HELP_WORDS), page
    assert not any(m.value for m in asked.sidebar.multiselect if "early_help" in str(m.value))


@pytest.mark.parametrize(
    ("user", "sees_early_help"), [(POLICE, False), (signed_in("a@children.example"), True)]
)
def test_priorities_and_early_warning_list_only_the_viewers_datasets(env, fetched, user, sees_early_help):
    """The agency pickers, the tables and the files: a partner agency's analyst meets no trace
    of another agency's restricted dataset; its owner finds it there (the test can see it)."""
    ranked = run(user, "screens/priorities.py")
    offered = ranked.multiselect(key="pr_agencies").options
    assert ("Fairhaven Children's Services" in offered) == sees_early_help
    warned = run(user, "screens/early_warning.py")
    assert "priorities.csv" in {name for name, _ in fetched}
    if not sees_early_help:
        assert not any(word in texts(ranked) + texts(warned) for word in EARLY_HELP_WORDS)
        for name, make in fetched:
            body = make().decode("utf-8")
            assert not any(word in body for word in EARLY_HELP_WORDS), name


def test_a_partners_ranking_and_warnings_leave_out_the_restricted_dataset(small_demo_db, tmp_path):
    """What the priorities and early-warning pages and files are made of: the police's view of
    every agency's demand holds no early help, in the ranking, its words or its checks."""
    import tomllib

    from app import access
    from app import early_warning as ew
    from app import priorities as pr
    from app.filters import Filter, FilterError
    from app.warehouse import open_readonly

    rules = access.parse_access(tomllib.loads(ACCESS), tmp_path / "access.toml")
    with open_readonly(small_demo_db[0]) as con:
        police = access.resolve(rules, access.datasets_frame(con), "a@police.example")
        everyone = pr.demand_agencies(con)
        theirs = pr.demand_agencies(con, police)
        assert "Fairhaven Children's Services" in everyone
        assert set(theirs) == set(everyone) - {"Fairhaven Children's Services"}
        # Weights naming the restricted dataset's agency (a hand-made request) are refused in
        # the words a made-up agency gets.
        refused = []
        for agency in ("Fairhaven Children's Services", "Nobody"):
            with pytest.raises(FilterError) as caught:
                pr.rank(con, {agency: 1.0}, access=police)
            # (a name holding an apostrophe is quoted the other way: the same message)
            refused.append(str(caught.value).replace(agency, "X").replace('"', "'"))
        assert refused[0] == refused[1]
        ranking = pr.rank(con, dict.fromkeys(theirs, 1.0), access=police)
        # Early warning judges the same datasets: every check the page could list or write.
        judged = ew.checks(con, Filter(access=police), kinds=("ward",))
        judged_all = ew.checks(con, Filter(), kinds=("ward",))
    assert set(ranking.units["agency"]) <= set(theirs)
    assert "early_help" in set(judged_all["dataset"])
    assert len(judged) and "early_help" not in set(judged["dataset"])
    assert not any(word in judged.drop(columns="h3_cells").to_csv() for word in EARLY_HELP_WORDS)
    body = ranking.frame.to_csv(index=False) + ranking.units.to_csv(index=False) + ranking.description
    assert not any(word in body for word in EARLY_HELP_WORDS)


@pytest.mark.parametrize(
    ("page", "files"),
    [
        ("screens/hotspots.py", {"hotspot_areas.csv", "hotspots.csv", "colocation.csv"}),
        ("screens/ward.py", {"ward-profile-{ward}.html", "ward-profile-{ward}.json"}),
        ("screens/priorities.py", {"priorities.csv"}),
    ],
)
def test_every_file_a_page_offers_is_recorded_when_fetched(env, fetched, page, files):
    at = run(MANAGER, page)
    ward = at.query_params.get("ward", [""])
    ward = ward[0] if isinstance(ward, list) else ward
    expected = {f.format(ward=ward) for f in files}
    assert {name for name, _ in fetched} == expected
    before = len([e for e in trail(env) if e["action"] == "download"])
    assert before == 0  # offering a file records nothing; fetching it does
    for _, make in fetched:
        make()
    entries = [e for e in trail(env) if e["action"] == "download"]
    assert {e["files"][0]["name"] for e in entries} == expected
    for e in entries:
        assert (e["agency"], e["role"]) == ("Fairhaven City Council", "service_manager")
        assert e["what"] and e["filter"] is not None and len(e["files"][0]["sha256"]) == 64


@pytest.mark.parametrize(
    ("user", "sees_early_help"),
    [(POLICE, False), (FIRE_COUNCILLOR, False), (signed_in("a@children.example"), True)],
)
def test_a_ward_link_and_the_profiles_files_hold_only_what_the_viewer_may_see(
    env, fetched, user, sees_early_help
):
    """Another agency's person follows a ward link (as sent by a colleague): the profile page,
    its printable HTML and its JSON hold no trace of the restricted dataset; its owner finds it
    in all three (so the check can see it)."""
    at = run(user, "screens/ward.py", ward="E05900001")
    assert "E05900001" in " ".join(t.value for t in at.title)
    files = {name: make().decode("utf-8") for name, make in fetched}
    assert set(files) == {"ward-profile-E05900001.html", "ward-profile-E05900001.json"}
    profile = json.loads(files["ward-profile-E05900001.json"])
    for shown in (texts(at), files["ward-profile-E05900001.html"], json.dumps(profile)):
        assert any(word in shown for word in EARLY_HELP_WORDS) == sees_early_help


@pytest.mark.parametrize(
    ("user", "pages"),
    [
        (COUNCILLOR, ["map", "ward", "hotspots"]),
        (MANAGER, ["map", "ward", "hotspots", "priorities", "early_warning"]),
        (POLICE, ["map", "ward", "hotspots", "priorities", "early_warning", "data"]),
        (signed_in("admin@police.example"), ["data", "admin"]),
    ],
    ids=["councillor", "manager", "analyst", "administrator"],
)
def test_every_page_a_role_may_open_draws_without_error(env, user, pages):
    """Signed in, every figure must carry the viewer's context (a call without it is refused):
    each page a role may open draws whole, with no error."""
    for page in pages:
        at = run(user, f"screens/{page}.py")
        assert not at.exception, page
        assert not [e.value for e in at.error], (page, [e.value for e in at.error])
        assert at.title, page
