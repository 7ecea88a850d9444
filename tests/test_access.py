"""The access file: parsing, errors that name the key, deny by default, and what each sharing
level gives each role of each agency."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from app import access
from app.access import LOCAL, AccessContext, AccessError, load_access, may, pages, resolve

POLICE = "Fairhaven Police"
COUNCIL = "Fairhaven City Council"
CHILDREN = "Fairhaven Children's Services"
FIRE = "Fairhaven Fire and Rescue"

# The demo city's datasets as the warehouse lists them.
DATASETS = pd.DataFrame(
    [
        ("police_crime", POLICE, "partners"),
        ("police_asb", POLICE, "open"),
        ("police_patrols", POLICE, "partners"),
        ("fire_incidents", FIRE, "open"),
        ("council_env", COUNCIL, "open"),
        ("outreach_visits", COUNCIL, "partners"),
        ("early_help", CHILDREN, "restricted"),
    ],
    columns=["id", "agency", "sharing"],
)

GOOD = f"""
agencies = ["{POLICE}", "{COUNCIL}", "{CHILDREN}", "{FIRE}"]

[[grant]]
email = "Chief@Police.example"
agency = "{POLICE}"
role = "administrator"

[[grant]]
domain = "police.example"
agency = "{POLICE}"
role = "analyst"

[[grant]]
domain = "council.example"
agency = "{COUNCIL}"
role = "service_manager"

[[grant]]
claim = {{ agency = "council", roles = "councillor" }}
agency = "{COUNCIL}"
role = "councillor"

[[grant]]
domain = "children.example"
agency = "{CHILDREN}"
role = "analyst"

[[grant]]
domain = "fire.example"
agency = "{FIRE}"
role = "analyst"

[datasets.early_help]
released_to = ["{COUNCIL}"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "access.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def good(tmp_path) -> access.AccessFile:
    return load_access(write(tmp_path, GOOD))


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(AccessError) as exc:
        load_access(write(tmp_path, text))
    return exc.value.problems


def test_parses_grants_and_release_lists(good):
    assert [g.kind for g in good.grants] == ["email", "domain", "domain", "claim", "domain", "domain"]
    assert good.grants[0].email == "chief@police.example"  # addresses compare case-blind
    assert good.released_to == {"early_help": (COUNCIL,)}
    summary = good.summary()
    assert summary["grants"][3] == {
        "matches": "claim agency=council, roles=councillor",
        "agency": COUNCIL,
        "role": "councillor",
    }


def test_every_mistake_is_reported_at_once_naming_the_key(tmp_path):
    problems = problems_of(
        tmp_path,
        f"""
        agencies = ["{POLICE}"]
        owner = "me"

        [[grant]]
        email = "a@police.example"
        domain = "police.example"
        agency = "{POLICE}"
        role = "analyst"

        [[grant]]
        email = "b@police.example"
        agency = "Fairhaven Polce"
        role = "superuser"
        colour = "blue"

        [datasets.early_help]
        released_to = ["Nobody"]
        why = "because"
        """,
    )
    text = "\n".join(problems)
    assert all(p.startswith(str(tmp_path / "access.toml")) for p in problems)
    assert "unknown top-level key 'owner'" in text
    assert "grant[1]: key 'email': give exactly one of email, domain or claim, not email and domain" in text
    assert "grant[2]: key 'agency': 'Fairhaven Polce' is not in 'agencies'" in text
    assert "grant[2]: key 'role': must be one of councillor, service_manager, analyst, administrator" in text
    assert "grant[2]: key 'colour': unknown key" in text
    assert "[datasets.early_help]: key 'released_to': not in 'agencies': Nobody" in text
    assert "[datasets.early_help]: key 'why': unknown key" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("agencies = 'x'\n", "key 'agencies': required"),
        (f'agencies = ["{POLICE}"]\n', "no [[grant]]: nobody could sign in"),
        (f'agencies = ["{POLICE}"]\n[[grant]]\nagency = "{POLICE}"\nrole = "analyst"\n', "give exactly one"),
        (
            f'agencies = ["{POLICE}"]\n[[grant]]\nemail = "nobody"\nagency = "{POLICE}"\nrole = "analyst"\n',
            "key 'email': not an email address",
        ),
        (
            f'agencies = ["{POLICE}"]\n[[grant]]\ndomain = "@x"\nagency = "{POLICE}"\nrole = "analyst"\n',
            "key 'domain': a domain such as",
        ),
        (
            f'agencies = ["{POLICE}"]\n[[grant]]\nclaim = {{ roles = 3 }}\n'
            f'agency = "{POLICE}"\nrole = "analyst"\n',
            "key 'claim': a table of claim names",
        ),
        ("agencies = [", "not valid TOML"),
    ],
)
def test_single_mistakes(tmp_path, text, expected):
    assert expected in "\n".join(problems_of(tmp_path, text))


def test_missing_file_is_an_error_not_local_mode(tmp_path):
    missing = tmp_path / "nowhere.toml"
    assert access.access_path({"COMMON_GROUND_ACCESS": str(missing)}) == missing
    assert access.access_path({}) is None
    with pytest.raises(AccessError, match="access file not found"):
        load_access(missing)
    with pytest.raises(AccessError, match="access file not found"):
        access.cli_context(tmp_path / "wh.duckdb", "a@police.example", {"COMMON_GROUND_ACCESS": str(missing)})


def test_release_lists_checked_against_the_warehouse(good, tmp_path):
    text = GOOD + '\n[datasets.police_crime]\nreleased_to = ["Fairhaven City Council"]\n'
    text += '\n[datasets.gone]\nreleased_to = ["Fairhaven City Council"]\n'
    bad = load_access(write(tmp_path, text))
    problems = access.check_datasets(bad, DATASETS)
    assert any("[datasets.police_crime]: key 'released_to': the dataset is 'partners'" in p for p in problems)
    assert any("[datasets.gone]: no such dataset in the warehouse" in p for p in problems)
    with pytest.raises(AccessError):
        resolve(bad, DATASETS, "a@police.example")
    assert access.check_datasets(good, DATASETS) == []


@pytest.mark.parametrize(
    ("email", "claims", "why"),
    [
        ("someone@elsewhere.example", {}, "no grant matches"),
        (None, {}, "no email, no claim"),
        ("a@police.example.evil.example", {}, "a domain is matched whole"),
        ("police.example@evil.example", {}, "the part after @ is the domain"),
        ("a@police.example", {"email_verified": False}, "an unverified address proves nothing"),
        (None, {"agency": "council", "roles": ["analyst"]}, "a claim grant needs every claim"),
        (None, {"agency": ["council"], "roles": "councillor2"}, "claim values compare whole"),
    ],
)
def test_deny_by_default(good, email, claims, why):
    assert resolve(good, DATASETS, email, claims) is None, why


def test_email_beats_domain_and_claims_match_lists(good):
    chief = resolve(good, DATASETS, "CHIEF@police.example", {})
    assert (chief.role, chief.agency, chief.email) == ("administrator", POLICE, "chief@police.example")
    assert chief.grant == "grant 1: email chief@police.example"
    member = resolve(good, DATASETS, None, {"sub": "u1", "agency": "council", "roles": ["councillor", "x"]})
    assert (member.role, member.agency, member.email) == ("councillor", COUNCIL, "u1")
    # A claim grant beats a domain grant: the council's councillor by domain would be a manager.
    both = resolve(good, DATASETS, "c@council.example", {"agency": "council", "roles": ["councillor"]})
    assert both.role == "councillor"


def test_grants_for_two_agencies_deny(tmp_path):
    text = GOOD + f'\n[[grant]]\ndomain = "police.example"\nagency = "{FIRE}"\nrole = "analyst"\n'
    ambiguous = load_access(write(tmp_path, text))
    assert resolve(ambiguous, DATASETS, "a@police.example") is None
    grant, why = access.match(ambiguous, "a@police.example", {})
    assert grant is None and "more than one agency" in why


def test_same_agency_grants_take_the_highest_role(tmp_path):
    text = GOOD + f'\n[[grant]]\ndomain = "police.example"\nagency = "{POLICE}"\nrole = "councillor"\n'
    twice = load_access(write(tmp_path, text))
    assert resolve(twice, DATASETS, "a@police.example").role == "analyst"


ALL = tuple(sorted(DATASETS["id"]))
WITHOUT_EARLY_HELP = tuple(d for d in ALL if d != "early_help")


@pytest.mark.parametrize(
    ("email", "claims", "visible", "exact"),
    [
        # Police analyst: sees open and partners' data; its own partners' datasets exactly; the
        # restricted dataset of another agency not at all.
        ("a@police.example", {}, WITHOUT_EARLY_HELP, ("police_crime", "police_patrols")),
        # Police administrator: the same data as the analyst.
        ("chief@police.example", {}, WITHOUT_EARLY_HELP, ("police_crime", "police_patrols")),
        # Council service manager: early_help is released to the council (released figures).
        ("m@council.example", {}, ALL, ("outreach_visits",)),
        # Council councillor: released figures only, even of the council's own data.
        (None, {"agency": "council", "roles": "councillor"}, ALL, ()),
        # Children's services own early_help: exact.
        ("a@children.example", {}, ALL, ("early_help",)),
        # Fire: owns only open datasets, no release of early_help.
        ("a@fire.example", {}, WITHOUT_EARLY_HELP, ()),
    ],
)
def test_sharing_levels_by_role_and_agency(good, email, claims, visible, exact):
    ctx = resolve(good, DATASETS, email, claims)
    assert ctx is not None and not ctx.local
    assert ctx.visible == visible
    assert ctx.exact == exact
    assert all(ctx.may_see(d) for d in visible) and not any(ctx.may_see(d) for d in set(ALL) - set(visible))
    # Open datasets are never listed as exact (they are exact for everyone anyway).
    assert not set(ctx.exact) & {"police_asb", "fire_incidents", "council_env"}


def test_councillor_of_the_owning_agency_gets_released_figures_only(tmp_path):
    text = (
        GOOD + f'\n[[grant]]\nemail = "cllr@children.example"\nagency = "{CHILDREN}"\nrole = "councillor"\n'
    )
    ctx = resolve(load_access(write(tmp_path, text)), DATASETS, "cllr@children.example")
    assert ctx.role == "councillor" and ctx.exact == () and ctx.may_see("early_help")


def test_contexts_are_hashable_and_differ_by_agency(good):
    police = resolve(good, DATASETS, "a@police.example")
    fire = resolve(good, DATASETS, "a@fire.example")
    assert len({police, fire, LOCAL}) == 3
    assert hash(police) == hash(resolve(good, DATASETS, "a@police.example"))


@pytest.mark.parametrize(
    ("role", "expected_pages", "yes", "no"),
    [
        ("councillor", ("map", "ward", "hotspots"), (), ("overlap", "export", "uploads", "audit_trail")),
        (
            "service_manager",
            ("map", "ward", "hotspots", "priorities", "early_warning"),
            ("overlap", "hotspot_layers"),
            ("export", "data"),
        ),
        (
            "analyst",
            ("map", "ward", "hotspots", "priorities", "early_warning", "data"),
            ("export", "uploads", "quarantine_samples"),
            ("admin",),
        ),
        ("administrator", access.PAGES, ("export", "access_file", "audit_trail"), ()),
    ],
)
def test_roles_table(role, expected_pages, yes, no):
    ctx = AccessContext(email="x@y.example", agency=POLICE, role=role, visible=(), local=False)
    assert pages(ctx) == expected_pages
    assert all(may(ctx, c) for c in yes)
    assert not any(may(ctx, c) for c in no)


def test_local_mode_may_do_everything_and_unknown_capabilities_raise():
    assert pages(LOCAL) == access.PAGES
    assert all(may(LOCAL, c) for c in access.ALL_CAPABILITIES)
    with pytest.raises(ValueError, match="unknown capability 'exports'"):
        may(LOCAL, "exports")
    rows = access.roles_table()
    assert [r["role"] for r in rows] == list(access.ROLES)
    assert rows[1]["adds"] == ["early_warning", "hotspot_layers", "overlap", "priorities"]


def test_cli_context_without_access_file_is_the_local_user(tmp_path):
    assert access.cli_context(tmp_path / "wh.duckdb", None, {}) is LOCAL
    ctx = access.cli_context(tmp_path / "wh.duckdb", "Me@Here.example", {})
    assert ctx.local and ctx.email == "me@here.example" and ctx.visible is None


# --- the command line, on the small demo city ---------------------------------------------------


@pytest.fixture
def access_env(tmp_path, monkeypatch) -> Path:
    path = write(tmp_path, GOOD.replace(f'[datasets.early_help]\nreleased_to = ["{COUNCIL}"]\n', ""))
    monkeypatch.setenv("COMMON_GROUND_ACCESS", str(path))
    monkeypatch.setenv("COMMON_GROUND_AUDIT", str(tmp_path / "audit.jsonl"))
    return path


def test_cli_denied_user_is_one_line_exit_2(small_demo_db, access_env, tmp_path, capsys):
    from app.cli import main

    db, _ = small_demo_db
    out = tmp_path / "x.csv"
    code = main(["export", "wards", "--db", str(db), "--out", str(out), "--user", "who@elsewhere.example"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "who@elsewhere.example is not granted access" in err
    assert not out.exists()
    code = main(
        ["forecast", "--backtest", "--dataset", "ambulance", "--db", str(db), "--user", "x@nowhere.example"]
    )
    assert code == 2 and "not granted" in capsys.readouterr().err


def test_cli_restricted_dataset_is_unknown_to_other_agencies(small_demo_db, access_env, tmp_path, capsys):
    from app.cli import main

    db, _ = small_demo_db
    out = tmp_path / "x.csv"
    for argv in (
        ["export", "hexes", "--dataset", "early_help"],
        ["export", "forecast", "--dataset", "early_help"],
    ):
        code = main([*argv, "--db", str(db), "--out", str(out), "--user", "a@police.example"])
        err = capsys.readouterr().err
        assert code == 2 and "unknown dataset 'early_help'" in err
        assert "early_help" not in err.partition("known:")[2]
    code = main(
        ["forecast", "--backtest", "--dataset", "early_help", "--db", str(db), "--user", "a@police.example"]
    )
    assert code == 2 and "unknown dataset 'early_help'" in capsys.readouterr().err
    assert not out.exists()
