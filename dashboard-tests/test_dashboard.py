#!/usr/bin/env python3
"""Real-browser test of the agx-server dashboard (see README.md beside this file).

    python3 test_dashboard.py --base-url http://127.0.0.1:PORT --admin-token TOKEN \
        --store memory|postgres --screenshots DIR

Drives Debian's Chromium (/usr/bin/chromium) headless through Playwright. Prints
one line per passed step and exits 1 with a message on the first failed check.
Only the standard library and playwright are used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from urllib.parse import urlparse

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 5_000  # every Playwright action, navigation and assertion
HTTP_TIMEOUT_S = 5
USAGE_RETRY_S = 10  # the only wait: usage is flushed in the background
SESSION_COOKIE = "agx_session"
WIDGET_KEY_NAME = "Production Widget"
# Where the walk's chat calls come from: loopback, naming a documentation
# address in X-Forwarded-For for a server that trusts loopback as a proxy.
CLIENT_NETS = ["127.0.0.0/8", "::1", "192.0.2.0/24"]
CLIENT_ADDRESS = "192.0.2.10"
CHAT_BODY = {"message": "Hello", "sessionId": "s1"}
ELLIPSIS = "\u2026"

# Column headers of the "API keys" table, matched case-insensitively.
KEY_COLUMNS = {
    "name": r"^name$",
    "prefix": r"prefix|^key$",
    "mode": r"^mode$",
    "scopes": r"^scopes?$",
    "created": r"^created",
    "expires": r"^expires",
    "last used": r"^last used",
    "status": r"^status$",
}
USAGE_COLUMNS = ["Day", "Class", "Admitted", "Rate limited", "Refused", "Flag"]

# Everything a page holds that could leak a key: DOM, visible text, field
# values (not in the DOM serialisation), both storages, the URL and history.state.
SNAPSHOT_JS = """() => JSON.stringify({
  html: document.documentElement ? document.documentElement.outerHTML : '',
  text: document.body ? document.body.innerText : '',
  values: [...document.querySelectorAll('input, textarea, select')].map(e => e.value),
  local: Object.fromEntries(Object.entries(window.localStorage)),
  session: Object.fromEntries(Object.entries(window.sessionStorage)),
  href: location.href,
  state: JSON.stringify(history.state),
})"""

FETCH_JS = """async ([method, url, headers, body]) => {
  const init = {method, headers, credentials: 'same-origin'};
  if (body !== null) init.body = body;
  const r = await fetch(url, init);
  return {status: r.status, text: await r.text()};
}"""

HEADER_ROW_JS = """t => {
  const r = (t.tHead && t.tHead.rows.length) ? t.tHead.rows[t.tHead.rows.length - 1] : t.rows[0];
  return r ? [...r.cells].map(c => c.innerText.trim()) : [];
}"""

BODY_ROWS_JS = """t => {
  const head = t.tHead ? new Set([...t.tHead.rows]) : new Set();
  return [...t.rows].filter(r => !head.has(r) && r.querySelector('td'))
    .map(r => [...r.cells].map(c => c.innerText.trim()));
}"""

ROW_CELLS_JS = "r => [...r.cells].map(c => c.innerText.trim())"


class CheckFailed(Exception):
    pass


def check(cond: object, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None  # a 3xx comes back as an HTTPError, to be looked at


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(method: str, url: str, body: object = None, headers: dict | None = None):
    """(status, headers, body bytes); 3xx are not followed."""
    data = None if body is None else json.dumps(body).encode()
    h = {"Accept": "application/json"}
    if data is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with _OPENER.open(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise CheckFailed(f"{method} {url}: cannot reach the server: {e}") from e


def path_of(url: str) -> str:
    return urlparse(url).path.rstrip("/") or "/"


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class Secrets:
    """Every plaintext key the test made, and the snapshot from which on it
    must appear nowhere."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, int, str]] = []  # (key, first snapshot index, what)

    def add(self, key: str, from_snapshot: int, what: str) -> None:
        self.keys.append((key, from_snapshot, what))


class DashboardTest:
    def __init__(self, args: argparse.Namespace) -> None:
        self.base = args.base_url.rstrip("/")
        self.secrets_out = args.secrets_out
        u = urlparse(self.base)
        self.origin = f"{u.scheme}://{u.netloc}"
        self.admin_token = args.admin_token
        self.store = args.store
        self.shots = args.screenshots
        os.makedirs(self.shots, exist_ok=True)

        tag = secrets.token_hex(4)
        self.org_a = f"web-{self.store}-{tag}"
        self.org_b = f"web-{self.store}-{tag}-b"
        self.org_a_name = f"Web test {self.store} {tag} A"
        self.org_b_name = f"Web test {self.store} {tag} B"
        self.agent_a = f"{self.org_a}-agent"
        self.agent_b = f"{self.org_b}-agent"
        self.agent_a_name = f"Agent {tag} A"
        self.agent_b_name = f"Agent {tag} B"

        self.secrets = Secrets()
        self.snapshots: list[tuple[str, str]] = []  # (label, everything the page held)
        self.urls: list[str] = []  # every request and main-frame URL, all contexts

        self.pw = None
        self.browser = None
        self.ctx = None  # the admin's context
        self.page = None
        self.last_page = None  # for the failure screenshot

        self.org_b_token = ""
        self.key1 = self.key1_id = ""
        self.key2 = self.key2_id = ""
        self.session_value = ""

    # ------------------------------------------------------------------ helpers

    def url(self, path: str) -> str:
        return self.base + path

    def keys_path(self, org: str) -> str:
        return f"/dashboard/orgs/{org}/settings/api-keys"

    def agents_path(self, org: str) -> str:
        return f"/dashboard/orgs/{org}/agents"

    def admin(self, method: str, path: str, body: object = None, want: int | None = None):
        status, _, raw = http(method, self.url(path), body, {"Authorization": f"Bearer {self.admin_token}"})
        if want is not None:
            check(status == want, f"{method} {path} answered {status}, expected {want}: {raw[:300]!r}")
        try:
            return status, (json.loads(raw) if raw else None)
        except ValueError:
            raise CheckFailed(f"{method} {path}: the answer is not JSON: {raw[:300]!r}")

    def api_keys(self, org: str) -> list[dict]:
        _, body = self.admin("GET", f"/api/admin/orgs/{org}/keys", want=200)
        check(isinstance(body, list), f"GET keys of {org}: not a list of keys: {body!r}")
        return body

    def chat(self, key: str, agent: str | None = None, origin: str | None = None) -> int:
        # The widget key is limited to CLIENT_NETS: from loopback directly, or
        # as CLIENT_ADDRESS when the server trusts loopback as a proxy.
        headers = {"X-API-Key": key, "X-Forwarded-For": CLIENT_ADDRESS}
        if origin:
            headers["Origin"] = origin
        status, _, _ = http("POST", self.url(f"/api/public/agents/{agent or self.agent_a}/chat"), CHAT_BODY, headers)
        return status

    def new_context(self):
        ctx = self.browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(TIMEOUT_MS)
        ctx.set_default_navigation_timeout(TIMEOUT_MS)
        ctx.on("request", lambda r: self.urls.append(r.url))
        return ctx

    def new_page(self, ctx):
        page = ctx.new_page()
        page.on("framenavigated", lambda f: self.urls.append(f.url) if f.parent_frame is None else None)
        self.last_page = page
        return page

    def shot(self, page, name: str) -> None:
        page.screenshot(path=os.path.join(self.shots, name), full_page=True)

    def snap(self, page, label: str) -> None:
        """Keep what the page holds now, and check at once that no key whose
        dialog was closed is in it."""
        self.last_page = page
        for attempt in range(3):
            try:
                page.wait_for_load_state("load")
                content = page.content() + page.evaluate(SNAPSHOT_JS)
                break
            except PlaywrightError as e:  # a navigation began meanwhile
                transient = "context was destroyed" in str(e) or "navigating" in str(e)
                if not transient or attempt == 2:
                    raise
        cookies = json.dumps(page.context.cookies())
        self.snapshots.append((label, content + cookies))
        self.check_no_leak(len(self.snapshots) - 1)

    def check_no_leak(self, index: int) -> None:
        label, content = self.snapshots[index]
        for key, since, what in self.secrets.keys:
            if index >= since:
                check(key not in content, f"the plaintext of {what} is still in the page '{label}' (DOM, storage or URL)")

    def close_secret(self, key: str, what: str) -> None:
        """From the next snapshot on, `key` must be nowhere."""
        self.secrets.add(key, len(self.snapshots), what)

    def csrf(self, page) -> str:
        meta = page.locator('meta[name="csrf-token"]')
        expect(meta).to_have_count(1)
        token = meta.get_attribute("content") or ""
        check(token, "<meta name=\"csrf-token\"> has an empty content")
        return token

    def page_fetch(self, page, method: str, path: str, headers: dict, body: object = None) -> dict:
        return page.evaluate(FETCH_JS, [method, path, headers, None if body is None else json.dumps(body)])

    def expect_admin_call(self, page, method: str, path_re: str):
        pattern = re.compile(path_re)
        return page.expect_response(
            lambda r: r.request.method in method.split("|") and bool(pattern.fullmatch(urlparse(r.url).path))
        )

    def check_admin_call(self, resp, csrf: str, want: tuple[int, ...], what: str) -> None:
        check(resp.status in want, f"{what}: {resp.request.method} {urlparse(resp.url).path} answered {resp.status}, expected {want}")
        sent = resp.request.header_value("x-csrf-token")
        check(sent == csrf, f"{what}: the page's fetch sent X-CSRF-Token {sent!r}, not the <meta> value")

    def check_nav(self, page, org_page: bool = True) -> None:
        """The signed-in frame. The admin's Organizations page names no org, so
        there only Sign out is required (its nav links would have no org)."""
        expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
        if not org_page:
            return
        nav = page.get_by_role("navigation", name="Main", exact=True)
        expect(nav).to_be_visible()
        expect(nav.get_by_role("link", name="Settings > API Keys", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="Agents", exact=True)).to_be_visible()

    def check_session_cookie(self, ctx) -> str:
        cookies = [c for c in ctx.cookies(self.base) if c["name"] == SESSION_COOKIE]
        check(len(cookies) == 1, f"no {SESSION_COOKIE} cookie after signing in (cookies: {[c['name'] for c in ctx.cookies()]})")
        c = cookies[0]
        check(c["httpOnly"], f"{SESSION_COOKIE} is not HttpOnly")
        check(c["sameSite"] == "Strict", f"{SESSION_COOKIE} has SameSite={c['sameSite']}, not Strict")
        return c["value"]

    def sign_in(self, page, token: str, valid: bool = True, screenshot: str | None = None) -> None:
        page.goto(self.url("/dashboard/login"))
        field = page.get_by_label("Token", exact=True)
        expect(field).to_be_visible()
        expect(field).to_have_attribute("type", "password")
        if screenshot:
            self.shot(page, screenshot)
        field.fill(token)
        page.get_by_role("button", name="Sign in", exact=True).click()
        if valid:
            page.wait_for_url(lambda u: path_of(u) != "/dashboard/login")

    def keys_table(self, page):
        return page.get_by_role("table", name="API keys", exact=True)

    def key_rows(self, page):
        table = self.keys_table(page)
        return table.get_by_role("row").and_(table.locator("[data-key-id]"))

    def key_row(self, page, key_id: str):
        table = self.keys_table(page)
        return table.get_by_role("row").and_(table.locator(f'[data-key-id="{key_id}"]'))

    def row_ids(self, page) -> list[str]:
        rows = self.key_rows(page)
        return [rows.nth(i).get_attribute("data-key-id") or "" for i in range(rows.count())]

    def key_columns(self, page) -> dict[str, int]:
        headers = self.keys_table(page).evaluate(HEADER_ROW_JS)
        columns = {}
        for col, pattern in KEY_COLUMNS.items():
            hits = [i for i, h in enumerate(headers) if re.search(pattern, h, re.I)]
            check(len(hits) == 1, f"the API keys table has no single '{col}' column; its headers are {headers}")
            columns[col] = hits[0]
        return columns

    def read_row(self, page, key_id: str) -> dict[str, str]:
        row = self.key_row(page, key_id)
        expect(row).to_have_count(1)
        expect(row).to_be_visible()
        cells = row.evaluate(ROW_CELLS_JS)
        columns = self.key_columns(page)
        check(max(columns.values()) < len(cells), f"the row of key {key_id} has {len(cells)} cells: {cells}")
        return {col: cells[i] for col, i in columns.items()}

    def open_keys_via_nav(self, page, org: str) -> None:
        nav = page.get_by_role("navigation", name="Main", exact=True)
        with page.expect_navigation():
            nav.get_by_role("link", name="Settings > API Keys", exact=True).click()
        check(path_of(page.url) == self.keys_path(org), f"Settings > API Keys led to {page.url}, not {self.keys_path(org)}")
        self.check_keys_page(page)

    def check_keys_page(self, page) -> None:
        expect(page.get_by_role("heading", level=1, name="Settings > API Keys", exact=True)).to_be_visible()
        expect(self.keys_table(page)).to_be_visible()

    def key_dialog(self, page):
        return page.get_by_role("dialog", name="Your new API key", exact=True)

    def read_new_key(self, page, created: dict, what: str) -> str:
        """The key shown in the 'Your new API key' dialog; Copy checked."""
        dlg = self.key_dialog(page)
        expect(dlg).to_be_visible()
        code = dlg.locator("#new-key")
        expect(code).to_be_visible()
        check(code.evaluate("e => e.tagName") == "CODE", "#new-key is not a <code> element")
        key = code.inner_text().strip()
        check(key and not re.search(r"\s", key), f"{what}: #new-key holds no key: {key!r}")
        check(key == created.get("key"), f"{what}: the dialog shows another key than the API answered")
        expect(dlg.get_by_text("It will not be shown again")).to_be_visible()
        # Copy: the clipboard first holds something else, then the key.
        page.evaluate("() => navigator.clipboard.writeText('not the key')")
        dlg.get_by_role("button", name="Copy", exact=True).click()
        page.wait_for_function(
            "async k => (await navigator.clipboard.readText()) === k", arg=key, timeout=TIMEOUT_MS
        )
        return key

    def close_key_dialog(self, page, key: str, what: str) -> None:
        dlg = self.key_dialog(page)
        dlg.get_by_role("button", name="Close", exact=True).click()
        expect(dlg).to_be_hidden()
        self.close_secret(key, what)

    # ------------------------------------------------------------------ steps

    def step_setup(self) -> str:
        for org, name, agent, agent_name in (
            (self.org_a, self.org_a_name, self.agent_a, self.agent_a_name),
            (self.org_b, self.org_b_name, self.agent_b, self.agent_b_name),
        ):
            self.admin("POST", "/api/admin/orgs", {"id": org, "name": name}, want=201)
            self.admin(
                "POST", f"/api/admin/orgs/{org}/agents", {"id": agent, "name": agent_name, "allowedDomains": []}, want=201
            )
        _, dt = self.admin("POST", f"/api/admin/orgs/{self.org_b}/dashboard-tokens", {"name": "web test"}, want=201)
        check(isinstance(dt, dict), f"dashboard token answer is not an object: {dt!r}")
        check(str(dt.get("id", "")).startswith("dt_"), f"dashboard token id {dt.get('id')!r} does not start with dt_")
        check(str(dt.get("token", "")).startswith("agxd_"), "dashboard token does not start with agxd_")
        check(dt.get("orgId") == self.org_b, f"dashboard token org is {dt.get('orgId')!r}, not {self.org_b}")
        check(dt.get("name") == "web test" and dt.get("createdAt"), f"dashboard token lacks name or createdAt: {sorted(dt)}")
        self.org_b_token = dt["token"]
        self.close_secret(self.org_b_token, "org B's dashboard token")
        return f"orgs {self.org_a} and {self.org_b}, an agent each, a dashboard token for {self.org_b}"

    def step_redirect(self) -> str:
        status, headers, _ = http("GET", self.url("/dashboard"), headers={"Accept": "text/html"})
        check(status in (301, 302, 303, 307, 308), f"GET /dashboard without a session answered {status}, not a redirect")
        check(path_of(headers.get("Location", "")) == "/dashboard/login", f"GET /dashboard redirects to {headers.get('Location')!r}")
        ctx = self.new_context()
        page = self.new_page(ctx)
        page.goto(self.url("/dashboard"))
        check(path_of(page.url) == "/dashboard/login", f"the browser ended on {page.url}, not /dashboard/login")
        self.snap(page, "login (redirected)")
        ctx.close()
        return "/dashboard without a session redirects to /dashboard/login"

    def step_wrong_token(self) -> str:
        ctx = self.new_context()
        page = self.new_page(ctx)
        self.sign_in(page, "agxd_" + secrets.token_urlsafe(24), valid=False, screenshot="login.png")
        expect(page.get_by_text("That token is not valid")).to_be_visible()
        expect(page.get_by_label("Token", exact=True)).to_be_visible()
        check(not [c for c in ctx.cookies() if c["name"] == SESSION_COOKIE], f"a wrong token still set {SESSION_COOKIE}")
        self.snap(page, "login (wrong token)")
        ctx.close()
        return "a wrong token gives the login page again with 'That token is not valid'"

    def step_admin_sign_in(self) -> str:
        self.ctx = self.new_context()
        self.ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=self.origin)
        self.page = page = self.new_page(self.ctx)
        self.sign_in(page, self.admin_token)
        self.session_value = self.check_session_cookie(self.ctx)
        check(SESSION_COOKIE not in page.evaluate("() => document.cookie"), f"{SESSION_COOKIE} is readable from JavaScript")
        expect(page.get_by_role("heading", name="Organizations", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name=self.org_a_name, exact=True)).to_be_visible()
        expect(page.get_by_role("link", name=self.org_b_name, exact=True)).to_be_visible()
        self.check_nav(page, org_page=False)
        self.shot(page, "organizations.png")
        self.snap(page, "organizations")
        return "admin token: HttpOnly SameSite=Strict agx_session, Organizations lists both orgs"

    def step_open_keys(self) -> str:
        page = self.page
        with page.expect_navigation():
            page.get_by_role("link", name=self.org_a_name, exact=True).click()
        check(f"/dashboard/orgs/{self.org_a}" in page.url, f"the org link led to {page.url}")
        self.check_nav(page)
        self.snap(page, "org page")
        self.open_keys_via_nav(page, self.org_a)
        self.check_nav(page)
        expect(page.get_by_role("heading", name="Rotating a key", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Create API Key", exact=True)).to_be_visible()
        self.csrf(page)
        expect(self.key_rows(page)).to_have_count(0)
        self.snap(page, "api keys (empty)")
        return "org link, then Settings > API Keys: heading, empty 'API keys' table, 'Rotating a key'"

    def step_create_key(self) -> str:
        page = self.page
        csrf = self.csrf(page)
        page.get_by_role("button", name="Create API Key", exact=True).click()
        dlg = page.get_by_role("dialog").filter(has=page.get_by_role("button", name="Create", exact=True))
        expect(dlg).to_have_count(1)
        expect(dlg).to_be_visible()
        check(dlg.evaluate("e => e.tagName") == "DIALOG", "the create form is not in a <dialog>")
        name = dlg.get_by_role("textbox", name="Name", exact=True)
        expect(name).to_be_visible()
        scopes = dlg.get_by_role("group", name="Scopes", exact=True)
        expect(scopes).to_be_visible()
        for scope in ("chat", "config", "conversations"):
            expect(scopes.get_by_role("checkbox", name=scope, exact=True)).to_be_visible()
            expect(scopes.get_by_role("checkbox", name=scope, exact=True)).not_to_be_checked()
        expect(dlg.get_by_text("None ticked means every scope")).to_be_visible()
        expect(dlg.get_by_role("checkbox", name="For a widget (chat only)", exact=True)).to_be_visible()
        expires = dlg.get_by_label("Expires (optional)", exact=True)
        expect(expires).to_be_visible()
        expect(expires).to_have_attribute("type", "date")
        mode = dlg.get_by_role("combobox", name="Mode", exact=True)
        expect(mode).to_be_visible()
        options = mode.evaluate("s => [...s.options].map(o => [o.value, o.textContent.trim()])")
        check(
            sorted(v for v, _ in options) == ["live", "test"] or sorted(t for _, t in options) == ["live", "test"],
            f"Mode offers {options}, not live and test",
        )
        for cls in ("chat", "config", "conversations"):
            field = dlg.get_by_role("spinbutton", name=f"{cls} per minute")
            expect(field).to_have_count(1)
            expect(field).to_be_visible()
        name.fill(WIDGET_KEY_NAME)
        scopes.get_by_role("checkbox", name="chat", exact=True).check()
        # Limited to networks the test's own chat calls come from.
        networks = dlg.get_by_role("textbox", name="Allowed networks (optional)", exact=True)
        expect(networks).to_be_visible()
        networks.fill(", ".join(CLIENT_NETS))
        self.shot(page, "create-key.png")
        with self.expect_admin_call(page, "POST", rf"/api/admin/orgs/{re.escape(self.org_a)}/keys") as info:
            dlg.get_by_role("button", name="Create", exact=True).click()
        resp = info.value
        self.check_admin_call(resp, csrf, (201,), "Create")
        created = resp.json()
        check(created.get("name") == WIDGET_KEY_NAME, f"the created key is named {created.get('name')!r}")
        check(created.get("scopes") == ["chat"], f"the created key has scopes {created.get('scopes')!r}, not ['chat']")
        nets = created.get("allowedNetworks")
        want = ["127.0.0.0/8", "::1/128", "192.0.2.0/24"]
        check(nets == want, f"the created key allows networks {nets!r}, not {want!r}")
        self.key1_id = created["id"]
        self.key1 = self.read_new_key(page, created, "the new key")
        self.shot(page, "new-key.png")
        self.close_key_dialog(page, self.key1, "the created key")
        return f"Create API Key (chat): key {self.key1_id} shown once, copied to the clipboard, closed"

    def step_key_gone(self) -> str:
        page = self.page
        row = self.key_row(page, self.key1_id)
        expect(row).to_be_visible()  # the table was reloaded
        self.snap(page, "api keys after create")
        check(self.key1 not in page.content(), "the key is still in page.content()")
        storages = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
        check(self.key1 not in storages, "the key is in localStorage or sessionStorage")
        leaked = [u for u in self.urls if self.key1 in u]
        check(not leaked, f"the key is in a URL of the history: {leaked[0][:120] if leaked else ''}")
        keys = self.api_keys(self.org_a)
        check(self.key1 not in json.dumps(keys), "GET keys holds the plaintext key")
        api = next((k for k in keys if k["id"] == self.key1_id), None)
        check(api, f"GET keys does not list {self.key1_id}")
        expect(self.key_rows(page)).to_have_count(len(keys))
        cells = self.read_row(page, self.key1_id)
        check(cells["name"] == WIDGET_KEY_NAME, f"name cell is {cells['name']!r}")
        check(cells["prefix"] == api["prefix"], f"prefix cell is {cells['prefix']!r}, the API says {api['prefix']!r}")
        if ELLIPSIS in api["prefix"]:
            head, tail = api["prefix"].split(ELLIPSIS, 1)
            check(self.key1.startswith(head) and self.key1.endswith(tail), "the display prefix does not match the key")
        check(cells["mode"] == api["mode"] == "live", f"mode cell is {cells['mode']!r}, API {api['mode']!r}")
        check(cells["scopes"] == "chat", f"scopes cell is {cells['scopes']!r}, not 'chat'")
        check(cells["last used"].lower() == "never", f"last used of an unused key is {cells['last used']!r}")
        check(cells["status"] == "active", f"status of the new key is {cells['status']!r}")
        row = self.key_row(page, self.key1_id)
        expect(row.get_by_role("link", name=f"Usage of {WIDGET_KEY_NAME}", exact=True)).to_be_visible()
        expect(row.get_by_role("button", name=f"Roll {WIDGET_KEY_NAME}", exact=True)).to_be_visible()
        expect(row.get_by_role("button", name=f"Delete {WIDGET_KEY_NAME}", exact=True)).to_be_visible()
        return "the key is gone from the DOM, the storages and the history; its row reads as the API says"

    def step_chat(self) -> str:
        status = self.chat(self.key1)
        check(status == 200, f"public chat with the new key answered {status}, not 200")
        # A chat-only key on the config route: 403, counted as a refusal of this key.
        status, _, _ = http("GET", self.url(f"/api/public/agents/{self.agent_a}"), None, {"X-API-Key": self.key1})
        check(status == 403, f"the chat-only key on the config route answered {status}, not 403")
        return "public chat with the new key: 200; the config route: 403 INSUFFICIENT_SCOPE"

    def step_last_used(self) -> str:
        page = self.page
        deadline = time.monotonic() + USAGE_RETRY_S
        while True:
            page.reload()
            self.check_keys_page(page)
            cells = self.read_row(page, self.key1_id)
            if cells["last used"] and cells["last used"].lower() != "never":
                break
            check(time.monotonic() < deadline, f"last used still reads {cells['last used']!r} {USAGE_RETRY_S} s after a chat")
            time.sleep(0.5)
        check(cells["scopes"] == "chat", f"scopes cell is {cells['scopes']!r}")
        self.shot(page, "api-keys.png")
        self.snap(page, "api keys after use")
        return f"after a reload the row shows scopes chat and last used {cells['last used']!r}"

    def step_usage(self) -> str:
        page = self.page
        link = self.key_row(page, self.key1_id).get_by_role("link", name=f"Usage of {WIDGET_KEY_NAME}", exact=True)
        with page.expect_navigation():
            link.click()
        deadline = time.monotonic() + USAGE_RETRY_S
        while True:
            expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^\s*Usage of"))
            chart = page.get_by_role("img", name=re.compile(r"^Requests per day"))
            expect(chart).to_be_visible()
            check(chart.evaluate("e => e.tagName.toLowerCase()") == "svg", "the 'Requests per day' image is not an <svg>")
            expect(page.get_by_text("Last used:")).to_be_visible()
            table = page.get_by_role("table", name="Usage by day", exact=True)
            expect(table).to_be_visible()
            headers = table.evaluate(HEADER_ROW_JS)
            check(headers == USAGE_COLUMNS, f"'Usage by day' has columns {headers}, not {USAGE_COLUMNS}")
            rows = table.evaluate(BODY_ROWS_JS)
            i_class, i_adm = USAGE_COLUMNS.index("Class"), USAGE_COLUMNS.index("Admitted")
            i_ref, i_flag = USAGE_COLUMNS.index("Refused"), USAGE_COLUMNS.index("Flag")

            def count(r: list[str], i: int) -> int:
                v = re.sub(r"[,\s]", "", r[i]) if len(r) > i else ""
                return int(v) if v.isdigit() else 0

            admitted = [r for r in rows if len(r) > i_adm and r[i_class] == "chat" and count(r, i_adm) >= 1]
            refused = [r for r in rows if len(r) > i_ref and r[i_class] == "config" and count(r, i_ref) >= 1]
            if admitted and refused:
                check(refused[0][i_flag].startswith("Unusual"), f"a day with a refusal is not flagged: {refused[0]}")
                break
            check(time.monotonic() < deadline, f"no 'chat' row with Admitted >= 1 and 'config' row with Refused >= 1 in 'Usage by day' after {USAGE_RETRY_S} s: {rows}")
            time.sleep(0.5)
            page.reload()
        self.check_nav(page)
        self.shot(page, "usage.png")
        self.snap(page, "usage")
        return f"Usage page: heading, 'Requests per day' svg, 'Usage by day' rows {admitted[0]} and {refused[0]} (flagged)"

    def step_roll(self) -> str:
        page = self.page
        self.open_keys_via_nav(page, self.org_a)
        csrf = self.csrf(page)
        before = {k["id"] for k in self.api_keys(self.org_a)}
        self.key_row(page, self.key1_id).get_by_role("button", name=f"Roll {WIDGET_KEY_NAME}", exact=True).click()
        grace = page.get_by_role("spinbutton", name="Grace period (seconds)", exact=True)
        dlg = page.get_by_role("dialog").filter(has=grace)
        expect(dlg).to_be_visible()
        grace.fill("60")
        rolled_at = datetime.now(timezone.utc)
        with self.expect_admin_call(page, "POST", rf"/api/admin/orgs/{re.escape(self.org_a)}/keys/{re.escape(self.key1_id)}/roll") as info:
            dlg.get_by_role("button", name="Roll", exact=True).click()
        resp = info.value
        self.check_admin_call(resp, csrf, (201,), "Roll")
        created = resp.json()
        self.key2_id = created["id"]
        check(self.key2_id not in before, f"the rolled key's id {self.key2_id} is not new")
        self.key2 = self.read_new_key(page, created, "the rolled key")
        check(self.key2 != self.key1, "Roll showed the old key")
        self.close_key_dialog(page, self.key2, "the rolled key")
        expect(self.key_row(page, self.key2_id)).to_be_visible()
        self.snap(page, "api keys after roll")
        old = self.read_row(page, self.key1_id)
        new = self.read_row(page, self.key2_id)
        check(old["status"] == "expiring", f"the old key's status is {old['status']!r}, not 'expiring'")
        check(new["status"] == "active", f"the rolled key's status is {new['status']!r}, not 'active'")
        api_old = next(k for k in self.api_keys(self.org_a) if k["id"] == self.key1_id)
        check(api_old.get("expiresAt"), "the old key has no expiresAt after the roll")
        left = (parse_time(api_old["expiresAt"]) - rolled_at).total_seconds()
        check(0 < left <= 120, f"the old key expires {left:.0f} s after the roll, not about 60 s")
        status = self.chat(self.key2)
        check(status == 200, f"public chat with the rolled key answered {status}, not 200")
        return "Roll (grace 60 s): new key shown once, old row 'expiring', new key's chat 200"

    def step_delete_old(self) -> str:
        page = self.page
        csrf = self.csrf(page)
        expiring = [rid for rid in self.row_ids(page) if self.read_row(page, rid)["status"] == "expiring"]
        check(expiring == [self.key1_id], f"the rows with status 'expiring' are {expiring}, not [{self.key1_id}]")
        seen: list[tuple[str, str]] = []

        def on_dialog(d):
            seen.append((d.type, d.message))
            d.accept()

        page.once("dialog", on_dialog)
        with self.expect_admin_call(page, "DELETE", rf"/api/admin/orgs/{re.escape(self.org_a)}/keys/{re.escape(self.key1_id)}") as info:
            self.key_row(page, self.key1_id).get_by_role("button", name=f"Delete {WIDGET_KEY_NAME}", exact=True).click()
        self.check_admin_call(info.value, csrf, (200, 204), "Delete")
        check(seen and seen[0][0] == "confirm", f"Delete did not ask with confirm(): {seen}")
        expect(self.key_row(page, self.key1_id)).to_have_count(0)
        expect(self.key_row(page, self.key2_id)).to_be_visible()
        self.snap(page, "api keys after delete")
        check(self.key1_id not in {k["id"] for k in self.api_keys(self.org_a)}, "the API still lists the deleted key")
        status = self.chat(self.key1)
        check(status == 401, f"public chat with the deleted key answered {status}, not 401")
        return "Delete (confirm accepted): the expiring row is gone, the old key's chat 401"

    def step_credits(self) -> str:
        page = self.page
        csrf = self.csrf(page)
        key_path = rf"/api/admin/orgs/{re.escape(self.org_a)}/keys/{re.escape(self.key2_id)}"
        cells = self.read_row(page, self.key2_id)
        credits_col = self.keys_table(page).evaluate(HEADER_ROW_JS).index("Credits")
        row_cells = lambda: self.key_row(page, self.key2_id).evaluate(ROW_CELLS_JS)  # noqa: E731
        check(row_cells()[credits_col] == "not counted", f"the credits cell of an uncounted key is {row_cells()[credits_col]!r}")
        # Set 2 credits through the Limits dialog; the networks field holds the key's networks.
        self.key_row(page, self.key2_id).get_by_role("button", name=f"Limits of {WIDGET_KEY_NAME}", exact=True).click()
        dlg = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name="Change a key's limits"))
        expect(dlg).to_be_visible()
        expect(dlg.get_by_role("textbox", name="Allowed networks", exact=True)).to_have_value(
            "127.0.0.0/8, ::1/128, 192.0.2.0/24"
        )
        dlg.get_by_role("combobox", name="Usage credits", exact=True).select_option("set")
        dlg.get_by_role("spinbutton", name="Uses", exact=True).fill("2")
        self.shot(page, "limits.png")
        # Saved, the page reloads to show the new row.
        with page.expect_navigation(), self.expect_admin_call(page, "PATCH", key_path) as info:
            dlg.get_by_role("button", name="Save", exact=True).click()
        self.check_admin_call(info.value, csrf, (200,), "Save limits")
        # The page has reloaded, so the answer is read back through the admin API.
        patched = next(k for k in self.api_keys(self.org_a) if k["id"] == self.key2_id)
        check(patched["credits"]["remaining"] == 2, f"the patched key's credits are {patched['credits']!r}")
        check(patched["allowedNetworks"] == ["127.0.0.0/8", "::1/128", "192.0.2.0/24"], "the networks changed")
        expect(self.key_row(page, self.key2_id)).to_be_visible()
        check(row_cells()[credits_col] == "2 left of 2", f"the credits cell reads {row_cells()[credits_col]!r}")
        statuses = [self.chat(self.key2) for _ in range(3)]
        check(statuses == [200, 200, 403], f"three chats with 2 credits answered {statuses}, not [200, 200, 403]")
        page.reload()
        self.check_keys_page(page)
        check(row_cells()[credits_col] == "0 left of 2", f"after the chats the credits cell reads {row_cells()[credits_col]!r}")
        # Stop counting: the key works again.
        csrf = self.csrf(page)
        self.key_row(page, self.key2_id).get_by_role("button", name=f"Limits of {WIDGET_KEY_NAME}", exact=True).click()
        expect(dlg).to_be_visible()
        dlg.get_by_role("combobox", name="Usage credits", exact=True).select_option("none")
        # Saved, the page reloads to show the new row.
        with page.expect_navigation(), self.expect_admin_call(page, "PATCH", key_path) as info:
            dlg.get_by_role("button", name="Save", exact=True).click()
        self.check_admin_call(info.value, csrf, (200,), "Save limits")
        patched = next(k for k in self.api_keys(self.org_a) if k["id"] == self.key2_id)
        check(patched["credits"] is None, "the key is still counted")
        expect(self.key_row(page, self.key2_id)).to_be_visible()
        status = self.chat(self.key2)
        check(status == 200, f"after 'stop counting' chat answered {status}, not 200")
        check(cells["status"] == "active", f"the key's status is {cells['status']!r}")
        self.snap(page, "api keys after limits")
        return "Limits: 2 credits set (row '2 left of 2'), chats 200 200 403, row '0 left of 2'; stop counting: chat 200"

    def step_agents(self) -> str:
        page = self.page
        nav = page.get_by_role("navigation", name="Main", exact=True)
        with page.expect_navigation():
            nav.get_by_role("link", name="Agents", exact=True).click()
        check(path_of(page.url) == self.agents_path(self.org_a), f"Agents led to {page.url}")
        self.check_nav(page)
        table = page.get_by_role("table", name="Agents", exact=True)
        expect(table).to_be_visible()
        expect(table.get_by_text(self.agent_a_name, exact=True).first).to_be_visible()
        expect(page.get_by_text(re.compile(r"only\W+(the\W+)?chat\W+scope", re.I)).first).to_be_visible()
        label = f"Allowed domains for {self.agent_a_name}"
        field = page.get_by_role("textbox", name=label, exact=True)
        expect(field).to_have_value("")
        field.fill("app.example.com")
        in_row = table.get_by_role("row").filter(has=field).get_by_role("button", name="Save", exact=True)
        save = in_row if in_row.count() == 1 else page.get_by_role("button", name="Save", exact=True)
        expect(save).to_have_count(1)
        csrf = self.csrf(page)
        with self.expect_admin_call(page, "POST|PUT|PATCH", rf"/api/admin/orgs/{re.escape(self.org_a)}/agents(/.*)?") as info:
            save.click()
        self.check_admin_call(info.value, csrf, (200, 201, 204), "Save")
        page.reload()
        expect(page.get_by_role("textbox", name=label, exact=True)).to_have_value("app.example.com")
        self.shot(page, "agents.png")
        self.snap(page, "agents")
        refused = self.chat(self.key2, origin="https://elsewhere.example.org")
        check(refused == 403, f"after the save, chat from another origin answered {refused}, not 403")
        allowed = self.chat(self.key2, origin="https://app.example.com")
        check(allowed == 200, f"after the save, chat from https://app.example.com answered {allowed}, not 200")
        return "Agents: allowed domains app.example.com saved, kept after a reload, enforced by the public API"

    def step_audit(self) -> str:
        page = self.page
        nav = page.get_by_role("navigation", name="Main", exact=True)
        with page.expect_navigation():
            nav.get_by_role("link", name="Audit log", exact=True).click()
        check(path_of(page.url) == f"/dashboard/orgs/{self.org_a}/audit-log", f"Audit log led to {page.url}")
        self.check_nav(page)
        table = page.get_by_role("table", name="Audit log", exact=True)
        expect(table).to_be_visible()
        rows = table.locator("tbody tr")
        # Newest first: the domain saved a step ago, then the old key's deletion.
        first = rows.nth(0)
        expect(first).to_contain_text("agent.updated")
        expect(first).to_contain_text("allowedDomains: app.example.com")
        for action in ["key.updated", "key.deleted", "key.rolled", "key.created"]:
            expect(table.get_by_text(action, exact=True).first).to_be_visible()
        html = page.content()
        leaked = [key for key, _, _ in self.secrets.keys if key in html]
        check(not leaked, "the audit log page shows a plaintext key")
        self.shot(page, "audit-log.png")
        self.snap(page, "audit log")
        return f"Audit log: {rows.count()} events, newest the domain save, with the roll and deletion; no key shown"

    def step_leaks(self) -> str:
        page = self.page
        self.open_keys_via_nav(page, self.org_a)
        csrf = self.csrf(page)
        # A key of this org and one of the other, made through the admin API.
        _, mine = self.admin("POST", f"/api/admin/orgs/{self.org_a}/keys", {"name": "Leaked"}, want=201)
        _, theirs = self.admin("POST", f"/api/admin/orgs/{self.org_b}/keys", {"name": "Elsewhere"}, want=201)
        page.reload()
        self.check_keys_page(page)
        expect(self.key_row(page, mine["id"])).to_be_visible()
        form = page.get_by_role("form", name="Leaked keys")
        expect(form).to_be_visible()
        text = form.get_by_role("textbox", name="Text where keys were found", exact=True)
        text.fill(f"# config.env pushed by mistake\nAGX_KEY={mine['key']}\nOTHER={theirs['key']}\n")
        with self.expect_admin_call(page, "POST", rf"/api/admin/orgs/{re.escape(self.org_a)}/leaks") as info:
            form.get_by_role("button", name="Revoke leaked keys", exact=True).click()
        self.check_admin_call(info.value, csrf, (200,), "Revoke leaked keys")
        result = form.get_by_role("list", name="Keys found")
        expect(result.get_by_role("listitem")).to_have_count(2)
        items = result.get_by_role("listitem").all_inner_texts()
        check(items == [f"{mine['prefix']}: revoked", f"{theirs['prefix']}: unknown"], f"the report reads {items}")
        expect(text).to_have_value("")
        expect(self.key_row(page, mine["id"])).to_have_count(0)
        self.close_secret(mine["key"], "the leaked key")
        self.close_secret(theirs["key"], "the other org's key")
        self.shot(page, "leaks.png")
        self.snap(page, "api keys after a leak report")
        status = self.chat(mine["key"])
        check(status == 401, f"the revoked key's chat answered {status}, not 401")
        status, _, _ = http("GET", self.url(f"/api/public/agents/{self.agent_b}"), None, {"X-API-Key": theirs["key"]})
        check(status == 200, f"the other org's key answered {status} after the report, not 200")
        _, log = self.admin("GET", f"/api/admin/orgs/{self.org_a}/audit-log?limit=1", want=200)
        event = log["events"][0]
        check(event["action"] == "key.revoked_leaked" and event["target"] == mine["id"], f"the newest event is {event}")
        return "Leaked keys: this org's key revoked (row gone, chat 401), the other org's 'unknown' and still working"

    def step_csrf(self) -> str:
        page = self.page
        page.goto(self.url(self.keys_path(self.org_a)))
        self.check_keys_page(page)
        csrf = self.csrf(page)
        path = f"/api/admin/orgs/{self.org_a}/keys"
        body = {"name": "csrf probe", "scopes": ["chat"]}
        json_ct = {"Content-Type": "application/json"}
        r = self.page_fetch(page, "POST", path, json_ct, body)
        check(r["status"] == 403, f"POST {path} without X-CSRF-Token answered {r['status']}, not 403")
        r = self.page_fetch(page, "POST", path, {**json_ct, "X-CSRF-Token": "wrong-" + secrets.token_hex(8)}, body)
        check(r["status"] == 403, f"POST {path} with a wrong X-CSRF-Token answered {r['status']}, not 403")
        check(not [k for k in self.api_keys(self.org_a) if k["name"] == "csrf probe"], "a refused POST still made a key")
        # The same request with the page's token goes through: the 403s were the token's.
        r = self.page_fetch(page, "POST", path, {**json_ct, "X-CSRF-Token": csrf}, body)
        check(r["status"] == 201, f"POST {path} with the page's X-CSRF-Token answered {r['status']}, not 201")
        probe = json.loads(r["text"])
        self.close_secret(probe["key"], "the CSRF probe key")
        self.admin("DELETE", f"{path}/{probe['id']}", want=204)
        page.reload()
        self.check_keys_page(page)
        self.snap(page, "api keys after the csrf probe")
        return "CSRF: POST keys without the header 403, with a wrong token 403 (with the right one 201)"

    def step_isolation(self) -> str:
        ctx = self.new_context()
        page = self.new_page(ctx)
        self.sign_in(page, self.org_b_token)
        self.check_session_cookie(ctx)
        check(path_of(page.url) == self.keys_path(self.org_b), f"org B's token landed on {page.url}, not its keys page")
        self.check_keys_page(page)
        self.check_nav(page)
        self.snap(page, "org B keys")
        resp = page.goto(self.url(self.keys_path(self.org_a)))
        check(resp is not None and resp.status == 404, f"org B opening org A's keys page got {resp and resp.status}, not 404")
        self.snap(page, "org B on org A's keys page")
        resp = page.goto(self.url(self.keys_path(self.org_b)))
        check(resp is not None and resp.status == 200, f"org B's own keys page answered {resp and resp.status}")
        self.check_keys_page(page)
        csrf = self.csrf(page)
        r = self.page_fetch(page, "GET", f"/api/admin/orgs/{self.org_a}/keys", {"X-CSRF-Token": csrf})
        check(r["status"] == 404, f"org B's GET /api/admin/orgs/{self.org_a}/keys answered {r['status']}, not 404")
        check(self.key2_id not in r["text"], "org B's answer names org A's key")
        before = len(self.api_keys(self.org_a))
        r = self.page_fetch(page, "POST", f"/api/admin/orgs/{self.org_a}/keys",
                            {"Content-Type": "application/json", "X-CSRF-Token": csrf}, {"name": "cross-org probe"})
        check(r["status"] in (403, 404), f"org B's POST to org A's keys answered {r['status']}, not 404")
        check(len(self.api_keys(self.org_a)) == before, "org B made a key in org A")
        check(self.key2_id not in self.row_ids(page), "org B's keys page lists org A's key")
        self.snap(page, "org B keys again")
        ctx.close()
        return "org B's token: own keys page only; org A's page and API answer 404"

    def step_sign_out(self) -> str:
        page = self.page
        old = self.check_session_cookie(self.ctx)
        page.get_by_role("button", name="Sign out", exact=True).click()
        expect(page.get_by_label("Token", exact=True)).to_be_visible()
        check(path_of(page.url) == "/dashboard/login", f"Sign out ended on {page.url}, not the login page")
        self.snap(page, "after sign out")
        ctx = self.new_context()
        ctx.add_cookies([{"name": SESSION_COOKIE, "value": old, "url": self.base}])
        fresh = self.new_page(ctx)
        fresh.goto(self.url(self.keys_path(self.org_a)))
        check(path_of(fresh.url) == "/dashboard/login", f"the signed-out cookie still opens {fresh.url}")
        ctx.close()
        status, _, _ = http("GET", self.url(f"/api/admin/orgs/{self.org_a}/keys"), headers={"Cookie": f"{SESSION_COOKIE}={old}"})
        check(status == 401, f"GET keys with the signed-out cookie answered {status}, not 401")
        return "Sign out: the old agx_session cookie leads to the login page and gets 401 from the API"

    def step_no_plaintext(self) -> str:
        for i in range(len(self.snapshots)):
            self.check_no_leak(i)
        for key, _, what in self.secrets.keys:
            leaked = [u for u in self.urls if key in u]
            check(not leaked, f"the plaintext of {what} is in a visited URL")
        return f"no plaintext key in any of {len(self.snapshots)} page snapshots or {len(self.urls)} URLs"

    # ------------------------------------------------------------------ run

    STEPS = [
        ("0", "set-up through the admin API", "step_setup"),
        ("1a", "no session", "step_redirect"),
        ("1b", "wrong token", "step_wrong_token"),
        ("1c", "admin sign-in", "step_admin_sign_in"),
        ("1d", "keys page", "step_open_keys"),
        ("2a", "create a key", "step_create_key"),
        ("2b", "the key is shown once", "step_key_gone"),
        ("3", "use the key", "step_chat"),
        ("4a", "last used", "step_last_used"),
        ("4b", "usage page", "step_usage"),
        ("5a", "roll", "step_roll"),
        ("5b", "delete the old key", "step_delete_old"),
        ("5c", "usage credits", "step_credits"),
        ("6", "agents", "step_agents"),
        ("6b", "audit log", "step_audit"),
        ("6c", "leaked keys", "step_leaks"),
        ("7", "CSRF", "step_csrf"),
        ("8", "org isolation", "step_isolation"),
        ("9", "sign out", "step_sign_out"),
        ("10", "no plaintext key", "step_no_plaintext"),
    ]

    def run(self) -> int:
        print(f"dashboard test: {self.base} (store {self.store}), screenshots in {self.shots}")
        with sync_playwright() as pw:
            self.pw = pw
            expect.set_options(timeout=TIMEOUT_MS)
            self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                for number, title, method in self.STEPS:
                    try:
                        detail = getattr(self, method)()
                    except Exception as e:  # noqa: BLE001 - every failure ends the run the same way
                        self.fail(number, title, e)
                        return 1
                    print(f"PASS {number:>3}. {title}: {detail}", flush=True)
            finally:
                self.browser.close()
                if self.secrets_out:
                    with open(self.secrets_out, "w", encoding="utf-8") as f:
                        f.writelines(f"{key}\n" for key, _, _ in self.secrets.keys)
        print(f"dashboard test: all {len(self.STEPS)} steps passed ({self.store})")
        return 0

    def fail(self, number: str, title: str, e: Exception) -> None:
        message = str(e).strip()
        if len(message) > 2000:
            message = message[:2000] + " …"
        kind = "" if isinstance(e, CheckFailed) else f"{type(e).__name__}: "
        where = ""
        if self.last_page is not None and not self.last_page.is_closed():
            where = f"\n  page: {self.last_page.url}"
            try:
                self.shot(self.last_page, "failure.png")
                where += f"\n  screenshot: {os.path.join(self.shots, 'failure.png')}"
            except Exception:  # noqa: BLE001 - the failure itself matters more
                pass
        print(f"FAIL {number:>3}. {title}: {kind}{message}{where}", file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description="Real-browser test of the agx-server dashboard.")
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080")
    p.add_argument("--admin-token", required=True)
    p.add_argument("--store", required=True, choices=["memory", "postgres"])
    p.add_argument("--screenshots", required=True, metavar="DIR")
    p.add_argument(
        "--secrets-out",
        metavar="FILE",
        help="write every plaintext key and token the test saw, one per line, for the caller to look for in "
        "the server's logs and database",
    )
    args = p.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        print(f"FAIL: {CHROMIUM} is missing: run dashboard-tests/install.sh", file=sys.stderr)
        return 1
    return DashboardTest(args).run()


if __name__ == "__main__":
    sys.exit(main())
