"""End to end: a real OpenID Connect sign-in in headless Chromium against a local provider
(oidc-provider-mock on 127.0.0.1), with the ``agency`` and ``roles`` claims reaching the app
through the access file, the agency's pages and data shown, and sign-out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request

import pytest
from test_e2e import ARTIFACTS, browser, need_chromium, page, serving  # noqa: F401 (fixtures)

from app import audit
from app.dashboard.serve import free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# Claim grants only: a sign-in succeeds only if the provider's claims reached the app.
ACCESS = """
agencies = ["Fairhaven Police", "Fairhaven City Council", "Fairhaven Children's Services"]

[[grant]]
claim = { agency = "police", roles = "analyst" }
agency = "Fairhaven Police"
role = "analyst"

[[grant]]
claim = { agency = "council", roles = "councillor" }
agency = "Fairhaven City Council"
role = "councillor"
"""


def _wait(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds:.0f} s")


@pytest.fixture(scope="module")
def provider():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/.well-known/openid-configuration")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def set_claims(provider: str, sub: str, claims: dict) -> None:
    """The claims the provider will put in this person's ID token (its ``PUT /users/{sub}``)."""
    request = urllib.request.Request(
        f"{provider}/users/{urllib.parse.quote(sub)}",
        data=json.dumps(claims).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    assert urllib.request.urlopen(request, timeout=10).status == 204


@pytest.fixture(scope="module")
def app_url(small_demo_db, provider, tmp_path_factory):
    need_chromium()
    tmp = tmp_path_factory.mktemp("oidc")
    port = free_port()  # the provider sends people back to it: known before the start
    secrets = tmp / "secrets.toml"
    secrets.write_text(
        textwrap.dedent(
            f"""
            [auth]
            redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
            cookie_secret = "an-end-to-end-test-cookie-secret"
            client_id = "common-ground"
            client_secret = "e2e-secret"
            server_metadata_url = "{provider}/.well-known/openid-configuration"
            """
        ),
        encoding="utf-8",
    )
    (tmp / "access.toml").write_text(textwrap.dedent(ACCESS), encoding="utf-8")
    env = {
        "COMMON_GROUND_DB": str(small_demo_db[0]),
        "COMMON_GROUND_ACCESS": str(tmp / "access.toml"),
        "COMMON_GROUND_AUDIT": str(tmp / "audit.jsonl"),
    }
    for url in serving(env, port=port, secrets=secrets):
        yield url, tmp / "audit.jsonl"


def sign_in(page, url: str, sub: str) -> None:  # noqa: F811
    page.get_by_role("button", name="Sign in").click(timeout=60_000)
    page.get_by_placeholder("sub").first.fill(sub, timeout=30_000)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**", timeout=30_000)


def offered_datasets(page) -> list[str]:  # noqa: F811
    """The options of the sidebar's dataset list, as its drop-down shows them."""
    page.get_by_role("heading", name="Map").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the page's first run settles before the list is opened
    page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first.click(timeout=60_000)
    options = page.get_by_role("option")
    options.first.wait_for(timeout=30_000)
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return texts


def test_a_page_asked_for_by_url_before_sign_in_shows_only_the_sign_in_page(app_url, page):  # noqa: F811
    """The first visit to a fresh server asks for the administrators' page directly."""
    url, _ = app_url
    page.goto(f"{url}/admin")
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    body = page.locator("body").inner_text()
    assert "Access and audit" not in body and "Audit trail" not in body
    page.goto(f"{url}/data")
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    assert "Catalogue" not in page.locator("body").inner_text()


def test_sign_in_with_claims_shows_the_agencys_pages_and_data_then_sign_out(app_url, provider, page):  # noqa: F811
    url, trail = app_url
    sub = "analyst@police.example"
    set_claims(
        provider, sub, {"email": sub, "email_verified": True, "agency": "police", "roles": ["analyst"]}
    )
    page.goto(url)
    sign_in(page, url, sub)
    page.get_by_text("Signed in as analyst@police.example · Fairhaven Police · analyst").wait_for(
        timeout=60_000
    )
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert all(name in nav for name in ("Map", "Ward profile", "Hotspots and overlap", "Data"))
    assert "Access and audit" not in nav
    offered = offered_datasets(page)
    assert any(o.startswith("Fairhaven Police:") for o in offered)
    assert not any("early-help" in o for o in offered)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "oidc-signed-in.png"))

    page.get_by_role("button", name="Sign out").click()
    end = page.get_by_role("button", name="End session")
    again = page.get_by_role("button", name="Sign in")
    end.or_(again).first.wait_for(timeout=60_000)
    if end.is_visible():  # the provider asks to confirm ending its own session too
        end.click()
    again.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "oidc-signed-out.png"))
    assert "Signed in as" not in page.locator("body").inner_text()
    entries = list(audit.entries(trail))
    signed = [e for e in entries if e["action"] == "sign-in"]
    assert signed and (signed[-1]["who"], signed[-1]["agency"], signed[-1]["role"]) == (
        sub,
        "Fairhaven Police",
        "analyst",
    )
    assert audit.verify(trail).ok


def test_a_councillor_by_claims_gets_the_councillors_pages(app_url, provider, page):  # noqa: F811
    url, _ = app_url
    sub = "cllr@council.example"
    set_claims(provider, sub, {"email": sub, "agency": "council", "roles": ["councillor"]})
    page.goto(url)
    sign_in(page, url, sub)
    page.get_by_text("Fairhaven City Council · councillor").wait_for(timeout=60_000)
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Map" in nav and "Ward profile" in nav and "Data" not in nav


def test_an_account_without_a_grant_is_refused(app_url, provider, page):  # noqa: F811
    url, trail = app_url
    sub = "visitor@elsewhere.example"
    set_claims(provider, sub, {"email": sub, "agency": "elsewhere", "roles": ["analyst"]})
    page.goto(url)
    sign_in(page, url, sub)
    page.get_by_text("visitor@elsewhere.example is not granted access").wait_for(timeout=60_000)
    assert "No access" in page.locator("body").inner_text()
    assert any(e["action"] == "sign-in denied" and e["who"] == sub for e in audit.entries(trail))
