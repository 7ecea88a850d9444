"""Who is looking and what they may see: one access context, decided once per session.

Every engine call that reads figures carries the context (inside the ``Filter``), so it is part
of every cache key and a figure computed for one agency is never served to another. The engine
asks only three questions of it: which datasets the viewer may see at all (``visible``), which
protected datasets they see exactly because their agency owns them (``exact``), and who they are
for the audit trail. How a person maps to an agency and a role is read from the access file.

The access file is TOML, named by the environment variable ``COMMON_GROUND_ACCESS``; nobody is
let in unless a grant names them (deny by default)::

    agencies = ["Fairhaven City Council", "Fairhaven Police"]   # every party to the agreement

    [[grant]]                       # one person
    email = "chief.analyst@police.example"
    agency = "Fairhaven Police"
    role = "administrator"

    [[grant]]                       # everyone whose address ends in @police.example
    domain = "police.example"
    agency = "Fairhaven Police"
    role = "analyst"

    [[grant]]                       # claims the sign-in provider sends (a list claim: one of)
    claim = { agency = "council", roles = "councillor" }
    agency = "Fairhaven City Council"
    role = "councillor"

    [datasets.early_help]           # a restricted dataset's released figures go to these agencies
    released_to = ["Fairhaven City Council"]

Sharing levels, for a person of agency A: ``open`` datasets are seen as they are; ``partners``
datasets as released figures (the disclosure rule), exactly when A owns them; ``restricted``
datasets exactly when A owns them, as released figures when the file lists A in
``released_to``, and not at all otherwise. A councillor reads released figures only, even of
their own agency's data: councillors speak in public, and a released figure is one they may
repeat. Without an access file and without sign-in the one local user has every right.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

ROLES = ("councillor", "service_manager", "analyst", "administrator")
ACCESS_ENV = "COMMON_GROUND_ACCESS"

# What each role may do, each role adding to the one before it. Pages ask ``may(ctx, name)``.
_COUNCILLOR = frozenset({"map", "ward", "hotspots"})
_SERVICE_MANAGER = _COUNCILLOR | {"hotspot_layers", "overlap", "priorities", "early_warning"}
_ANALYST = _SERVICE_MANAGER | {"data", "uploads", "quarantine_samples", "export"}
_ADMINISTRATOR = _ANALYST | {"admin", "access_file", "audit_trail"}
CAPABILITIES: dict[str, frozenset[str]] = {
    "councillor": _COUNCILLOR,
    "service_manager": _SERVICE_MANAGER,
    "analyst": _ANALYST,
    "administrator": _ADMINISTRATOR,
}
ALL_CAPABILITIES = _ADMINISTRATOR
# The dashboard's pages, in menu order; each is also the capability that opens it.
PAGES = ("map", "ward", "hotspots", "priorities", "early_warning", "data", "admin")

TOP_KEYS = {"agencies", "grant", "datasets"}
GRANT_KEYS = {"email", "domain", "claim", "agency", "role"}
MATCH_KEYS = ("email", "domain", "claim")
DATASET_KEYS = {"released_to"}


class AccessError(ValueError):
    """An access file that cannot be used; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class AccessContext:
    email: str = "local"
    agency: str | None = None
    role: str = "analyst"
    # Datasets the viewer may see at all; None: every dataset (local mode).
    visible: tuple[str, ...] | None = None
    # Protected datasets the viewer sees exactly (their agency owns them).
    exact: tuple[str, ...] = ()
    local: bool = True
    # Which grant of the access file let the viewer in (for the audit trail and the admin page).
    grant: str = ""

    def may_see(self, dataset: str) -> bool:
        return self.visible is None or dataset in self.visible

    def sees_exactly(self, dataset: str) -> bool:
        return dataset in self.exact

    def describe(self) -> dict:
        """The context as the audit trail records it."""
        return {
            "who": self.email,
            "agency": self.agency,
            "role": "local" if self.local else self.role,
        }


LOCAL = AccessContext()


# Fail closed. Where people sign in, every figure must be asked for with the viewer's own
# context; one asked with none (or the local user's, who may see everything) is a mistake in
# the code, and refusing it beats serving every dataset. The dashboard sets this for each run
# of a signed-in session (a run is one thread, and a context variable stays in its thread:
# background work and other processes are not touched); the door to the data checks it.
_viewer_required: ContextVar[bool] = ContextVar("viewer_required", default=False)


class MissingViewer(RuntimeError):
    """A figure asked for without the viewer's access context where people sign in."""


def require_viewer(required: bool) -> None:
    """Whether this run's figures must carry a signed-in viewer's context (``check_viewer``)."""
    _viewer_required.set(required)


def check_viewer(ctx: AccessContext | None) -> None:
    """Refuse a figure asked for with no context, or the local user's, where people sign in."""
    if _viewer_required.get() and (ctx is None or ctx.local):
        raise MissingViewer("a figure was asked for without the viewer's access context")


def may(ctx: AccessContext, capability: str) -> bool:
    """Whether the viewer may use a page or capability; the local user may do everything.

    An unknown name is a programming mistake, not a refusal, so it raises rather than quietly
    saying no (or yes)."""
    if capability not in ALL_CAPABILITIES:
        raise ValueError(f"unknown capability '{capability}'; known: {', '.join(sorted(ALL_CAPABILITIES))}")
    return ctx.local or capability in CAPABILITIES.get(ctx.role, frozenset())


def pages(ctx: AccessContext) -> tuple[str, ...]:
    """The dashboard pages this viewer may open, in menu order."""
    return tuple(p for p in PAGES if may(ctx, p))


@dataclass(frozen=True)
class Grant:
    """One ``[[grant]]``: whom it matches (one of email, domain, claim) and what it gives."""

    agency: str
    role: str
    email: str | None = None
    domain: str | None = None
    claim: tuple[tuple[str, str], ...] = ()
    index: int = 0

    @property
    def kind(self) -> str:
        return "email" if self.email else "domain" if self.domain else "claim"

    def describe(self) -> str:
        if self.email:
            return f"grant {self.index + 1}: email {self.email}"
        if self.domain:
            return f"grant {self.index + 1}: domain {self.domain}"
        return f"grant {self.index + 1}: claim " + ", ".join(f"{k}={v}" for k, v in self.claim)

    def matches(self, email: str | None, claims: Mapping[str, object]) -> bool:
        if self.claim:
            return all(_claim_has(claims.get(name), value) for name, value in self.claim)
        if not email or claims.get("email_verified") is False:
            # A provider that says it has not verified the address: the address proves nothing.
            return False
        address = email.strip().lower()
        if self.email:
            return address == self.email
        return address.rpartition("@")[2] == self.domain and "@" in address


def _claim_has(actual: object, wanted: str) -> bool:
    """A claim matches when it equals the wanted value, or is a list (``roles``) holding it."""
    if isinstance(actual, str):
        return actual == wanted
    if isinstance(actual, (list, tuple)):
        return wanted in actual
    return False


@dataclass(frozen=True)
class AccessFile:
    path: Path
    agencies: tuple[str, ...]
    grants: tuple[Grant, ...]
    released_to: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> dict:
        """What the administrators' page shows: agencies, grants and release lists."""
        return {
            "path": str(self.path),
            "agencies": list(self.agencies),
            "grants": [
                {"matches": g.describe().partition(": ")[2], "agency": g.agency, "role": g.role}
                for g in self.grants
            ],
            "released_to": {k: list(v) for k, v in self.released_to.items()},
        }


def access_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The access file named by ``COMMON_GROUND_ACCESS``, or None (no access file: local mode).

    The variable set to a file that does not exist is an error (``load_access`` says so), never
    local mode: a mistyped path must lock people out, not let everyone in."""
    value = (os.environ if environ is None else environ).get(ACCESS_ENV, "").strip()
    return Path(value).expanduser() if value else None


def load_access(path: str | Path) -> AccessFile:
    """Read and validate an access file; raise AccessError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise AccessError([f"{path}: access file not found"])
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AccessError([f"{path}: not valid TOML: {exc}"]) from exc
    except OSError as exc:
        raise AccessError([f"{path}: cannot be read: {exc.strerror or exc}"]) from exc
    return parse_access(raw, path)


def parse_access(raw: dict, path: Path) -> AccessFile:
    problems: list[str] = []
    for key in raw:
        if key not in TOP_KEYS:
            problems.append(f"{path}: unknown top-level key '{key}'")
    agencies = raw.get("agencies")
    if not _string_list(agencies) or not agencies:
        problems.append(
            f"{path}: key 'agencies': required, a list of agency names as the catalogue writes them"
        )
        agencies = []
    elif len(set(agencies)) != len(agencies):
        problems.append(f"{path}: key 'agencies': names an agency twice")
    known = set(agencies)
    entries = raw.get("grant", [])
    if not isinstance(entries, list):
        problems.append(f"{path}: 'grant' must be an array of tables ([[grant]])")
        entries = []
    if not entries:
        problems.append(f"{path}: no [[grant]]: nobody could sign in")
    grants = [g for i, e in enumerate(entries) if (g := _parse_grant(e, i, path, known, problems))]
    released = _parse_datasets(raw.get("datasets", {}), path, known, problems)
    if problems:
        raise AccessError(problems)
    return AccessFile(path=path, agencies=tuple(agencies), grants=tuple(grants), released_to=released)


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _parse_grant(entry: object, index: int, path: Path, known: set[str], problems: list[str]) -> Grant | None:
    where = f"{path}: grant[{index + 1}]"
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)

    def bad(key: str, why: str) -> None:
        problems.append(f"{where}: key '{key}': {why}")

    for key in entry:
        if key not in GRANT_KEYS:
            bad(key, "unknown key")
    given = [k for k in MATCH_KEYS if k in entry]
    if len(given) != 1:
        bad(
            "email",
            "give exactly one of email, domain or claim" + (f", not {' and '.join(given)}" if given else ""),
        )
    for key in ("email", "domain"):
        value = entry.get(key)
        if key in entry and not (isinstance(value, str) and value.strip()):
            bad(key, "must be a non-empty string")
    email = entry.get("email")
    if isinstance(email, str) and email.strip() and "@" not in email:
        bad("email", f"not an email address: '{email}'")
    domain = entry.get("domain")
    if isinstance(domain, str) and ("@" in domain or "." not in domain.strip(".")):
        bad("domain", f"a domain such as 'police.example', not '{domain}'")
    claim = entry.get("claim")
    if "claim" in entry and not (
        isinstance(claim, dict) and claim and all(isinstance(v, str) and v for v in claim.values())
    ):
        bad("claim", 'a table of claim names and values, e.g. { agency = "police", roles = "analyst" }')
    agency = entry.get("agency")
    if not (isinstance(agency, str) and agency.strip()):
        bad("agency", "required, a non-empty string")
    elif known and agency not in known:
        bad("agency", f"'{agency}' is not in 'agencies'")
    role = entry.get("role")
    if role not in ROLES:
        bad("role", f"must be one of {', '.join(ROLES)}, not '{role}'" if role is not None else "required")
    if len(problems) > before:
        return None
    return Grant(
        agency=agency,
        role=role,
        email=email.strip().lower() if email else None,
        domain=domain.strip().lower() if domain else None,
        claim=tuple(sorted(claim.items())) if claim else (),
        index=index,
    )


def _parse_datasets(
    tables: object, path: Path, known: set[str], problems: list[str]
) -> dict[str, tuple[str, ...]]:
    if not isinstance(tables, dict):
        problems.append(f"{path}: 'datasets' must hold one table per dataset ([datasets.ID])")
        return {}
    released: dict[str, tuple[str, ...]] = {}
    for ident, table in tables.items():
        where = f"{path}: [datasets.{ident}]"
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table")
            continue
        for key in table:
            if key not in DATASET_KEYS:
                problems.append(f"{where}: key '{key}': unknown key")
        to = table.get("released_to")
        if not _string_list(to):
            problems.append(f"{where}: key 'released_to': required, a list of agency names")
            continue
        unknown = [a for a in to if known and a not in known]
        if unknown:
            problems.append(f"{where}: key 'released_to': not in 'agencies': {', '.join(unknown)}")
            continue
        released[ident] = tuple(to)
    return released


def check_datasets(access: AccessFile, datasets: pd.DataFrame) -> list[str]:
    """Problems that only the warehouse's datasets reveal: a release list for a dataset that is
    not there, or not restricted (partners' figures already go to every agency)."""
    sharing = dict(zip(datasets["id"], datasets["sharing"], strict=True))
    problems = []
    for ident in access.released_to:
        if ident not in sharing:
            problems.append(f"{access.path}: [datasets.{ident}]: no such dataset in the warehouse")
        elif sharing[ident] != "restricted":
            problems.append(
                f"{access.path}: [datasets.{ident}]: key 'released_to': the dataset is "
                f"'{sharing[ident]}', release lists apply to restricted datasets only"
            )
    return problems


def match(access: AccessFile, email: str | None, claims: Mapping[str, object]) -> tuple[Grant | None, str]:
    """The grant that lets this person in, and why (or why not).

    A grant by email beats one by claim, which beats one by domain: the more particular
    statement about a person wins. Grants of the same kind that match the same person and name
    different agencies cancel out (denied: the file contradicts itself about them); naming the
    same agency, the role with most rights is taken."""
    for kind in ("email", "claim", "domain"):
        found = [g for g in access.grants if g.kind == kind and g.matches(email, claims)]
        if not found:
            continue
        if len({g.agency for g in found}) > 1:
            listed = "; ".join(g.describe() for g in found)
            return None, f"grants for more than one agency match ({listed})"
        best = max(found, key=lambda g: ROLES.index(g.role))
        return best, best.describe()
    return None, "no grant in the access file matches"


def context_for(grant: Grant, email: str, datasets: pd.DataFrame, access: AccessFile) -> AccessContext:
    """The datasets a granted person sees, and which of them exactly (see the module's rules)."""
    visible: list[str] = []
    exact: list[str] = []
    releases_only = grant.role == "councillor"
    for ident, owner, sharing in zip(datasets["id"], datasets["agency"], datasets["sharing"], strict=True):
        own = owner == grant.agency
        if sharing == "restricted" and not own and grant.agency not in access.released_to.get(ident, ()):
            continue
        visible.append(ident)
        if sharing != "open" and own and not releases_only:
            exact.append(ident)
    return AccessContext(
        email=email,
        agency=grant.agency,
        role=grant.role,
        visible=tuple(sorted(visible)),
        exact=tuple(sorted(exact)),
        local=False,
        grant=grant.describe(),
    )


def resolve(
    access_file: AccessFile | str | Path,
    datasets_frame: pd.DataFrame,
    email: str | None,
    claims: Mapping[str, object] | None = None,
) -> AccessContext | None:
    """The access context of a signed-in person, or None when the access file lets them in
    nowhere (deny by default). ``datasets_frame`` has the warehouse's ``id``, ``agency`` and
    ``sharing`` columns; a problem between the file and it raises AccessError (the file must be
    fixed; nobody is let in on a file that does not say what its author meant)."""
    access = access_file if isinstance(access_file, AccessFile) else load_access(access_file)
    if problems := check_datasets(access, datasets_frame):
        raise AccessError(problems)
    claims = dict(claims or {})
    grant, _ = match(access, email, claims)
    if grant is None:
        return None
    who = (email or "").strip().lower() or str(claims.get("sub", "unknown"))
    return context_for(grant, who, datasets_frame, access)


def datasets_frame(con) -> pd.DataFrame:
    """The warehouse's datasets as ``resolve`` needs them (id, owning agency, sharing level)."""
    return con.execute("SELECT id, agency, sharing FROM datasets ORDER BY id").df()


def roles_table(roles: Iterable[str] = ROLES) -> list[dict]:
    """Each role with the pages and capabilities it adds to the role before it (for docs and
    the administrators' page)."""
    rows, before = [], frozenset()
    for role in roles:
        rows.append({"role": role, "adds": sorted(CAPABILITIES[role] - before)})
        before = CAPABILITIES[role]
    return rows


class AccessDenied(ValueError):
    """A named person whom the access file does not let in (one line for the user)."""


def cli_context(db: str | Path, user: str | None, environ: Mapping[str, str] | None = None) -> AccessContext:
    """The context of a command-line run: ``--user EMAIL`` resolved through the access file.

    The command line trusts whoever can read the warehouse file (the operating system's file
    permissions guard it); ``--user`` produces what that person may see, to hand it to them.
    Without ``--user``, or without an access file, the run is the local user's, with every
    right. Claim grants need a sign-in provider, so only email and domain grants apply here."""
    path = access_path(environ)
    if user is None or path is None:
        return LOCAL if user is None else AccessContext(email=user.strip().lower())
    access = load_access(path)
    from app.warehouse import open_readonly

    with open_readonly(db) as con:
        frame = datasets_frame(con)
    ctx = resolve(access, frame, user, {})
    if ctx is None:
        raise AccessDenied(f"{user} is not granted access by the access file {path}")
    return ctx


def restrict(f, ctx: AccessContext):
    """``f`` (a ``Filter``) carrying the viewer's context. A filter class without the field
    cannot obey a viewer's rights, so a non-local viewer is refused rather than shown all."""
    if hasattr(f, "access"):
        return f.with_(access=ctx)
    if ctx.local:
        return f
    raise AccessDenied("this engine cannot restrict figures to a viewer; nothing was exported")
