"""Browser tests: Debian's headless Chromium driven by Selenium against a live gateway.

Fixtures (a plugin of tests/conftest.py, so that one Chromium serves a test process):

* `live_server`: the base URL of a threaded server of `live_app` (which really commits and
  is emptied after the test).
* `live_key(role, team=None, name=...)`: an API key committed in the live database.
* `live_account(role, team=None, name=..., operator=None)`: a dashboard account committed in
  the live database (its team and operator too); returns its username, whose password is
  `ACCOUNT_PASSWORD`.
* `browser`: a headless Chromium (phone-sized windows on demand), one per test process.
* `dashboard`: a `Dashboard` on `live_server`: `sign_in(username)`, `open(path)`, `click(element)`
  and `click_link(text)` (each waits for the page it loads), `text`, `path`, `table(id)`,
  `flashes()`, `phone()`, `screenshot(name)`, and Selenium's driver itself as `.driver`.

Chromium and chromedriver come from Debian (`make system-deps`); nothing is downloaded at
test time (Selenium Manager is never asked: the driver's path is given). Without them the
tests are skipped, except under CI=true, where that is a failure. `SCREENSHOT_DIR` set (as
`make screenshots` does) keeps a PNG of every page a test names in `screenshot()`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import ACCOUNT_PASSWORD, IN_CI, ensure_team
from tests.serving import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
DESKTOP = (1280, 900)
PHONE = (390, 844)


def require_chromium() -> str:
    """The browser's path; skip the test without it (fail under CI=true)."""
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is not installed (CI=true: a missing tool is a failure)")
        pytest.skip("chromium is not installed (make system-deps)")
    return CHROMIUM


@pytest.fixture
def live_server(live_app: Flask) -> Iterator[str]:
    """The live app served on a free local port, for a real browser."""
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def live_key(live_app: Flask) -> Callable[..., str]:
    """Create a committed API key in the live database; returns the key."""
    from gateway.apikeys import create_api_key
    from gateway.db import utcnow
    from gateway.models import ApiRole

    def make(role: str, team: str | None = None, name: str = "browser") -> str:
        with live_app.app_context():
            session = live_app.extensions["database"].session()
            _row, key = create_api_key(session, name, ApiRole(role), team, utcnow())
            session.commit()
            return key

    return make


@pytest.fixture
def live_account(live_app: Flask) -> Callable[..., str]:
    """Create a committed dashboard account in the live database; returns its username."""
    from sqlalchemy import select

    from gateway.accounts import create_account
    from gateway.db import utcnow
    from gateway.models import ApiRole, Operator

    made: list[str] = []

    def make(
        role: str, team: str | None = None, name: str = "browser", operator: str | None = None
    ) -> str:
        username = f"person{len(made) + 1}"
        with live_app.app_context():
            session = live_app.extensions["database"].session()
            if team is not None:
                ensure_team(session, team)
            if (
                operator is not None
                and session.scalar(select(Operator).where(Operator.external_id == operator)) is None
            ):
                session.add(Operator(external_id=operator))
            create_account(
                session,
                username,
                ACCOUNT_PASSWORD,
                ApiRole(role),
                now=utcnow(),
                actor="test",
                name=name,
                teams=[team] if team else [],
                operator=operator,
            )
            session.commit()
        made.append(username)
        return username

    return make


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium for this test process (cookies cleared by `dashboard`)."""
    binary = require_chromium()
    if CHROMEDRIVER is None:
        if IN_CI:
            pytest.fail("chromedriver is not installed (CI=true: a missing tool is a failure)")
        pytest.skip("chromedriver is not installed (make system-deps: chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--lang=ru-RU",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Dashboard:
    """The dashboard in the browser, as a person uses it."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.size = DESKTOP

    def open(self, path: str) -> Dashboard:
        """Load a page of the gateway (a path such as /dashboard/operators)."""
        self.driver.get(self.base_url + path)
        return self

    def _submit(self, element: Any, seconds: float = 20) -> Dashboard:
        """Click what loads a new page (a link, a form's button) and wait until it has."""
        from selenium.webdriver.support.ui import WebDriverWait

        old_page = self.driver.find_element("tag name", "html").id
        element.click()
        wait = WebDriverWait(self.driver, seconds)
        # A new page has a new root element. Asking the old one whether it is stale (as
        # `staleness_of` does) fails now and then while it is being replaced: Chromium answers
        # "Node with given id does not belong to the document" instead of "stale element".
        wait.until(lambda d: d.find_element("tag name", "html").id != old_page)
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        return self

    @property
    def path(self) -> str:
        """The path (and query) of the page shown."""
        url: str = self.driver.current_url
        return url.removeprefix(self.base_url)

    @property
    def text(self) -> str:
        """The page's visible text."""
        return str(self.driver.find_element("tag name", "body").text)

    def sign_in(self, username: str, password: str = ACCOUNT_PASSWORD) -> Dashboard:
        """Sign in through the form, as a person types their username and password."""
        self.open("/dashboard/login")
        self.driver.find_element("name", "username").send_keys(username)
        self.driver.find_element("name", "password").send_keys(password)
        return self._submit(self.driver.find_element("css selector", "form.stacked button"))

    def flashes(self) -> list[str]:
        """The messages shown after the last action."""
        return [e.text for e in self.driver.find_elements("css selector", ".flash")]

    def table(self, table_id: str) -> list[dict[str, str]]:
        """The rows of a table as {header: visible text}, and `data-field` keys too."""
        table = self.driver.find_element("id", table_id)
        heads = [th.text for th in table.find_elements("css selector", "thead th")]
        rows = []
        for tr in table.find_elements("css selector", "tbody tr"):
            cells = tr.find_elements("css selector", "th, td")
            row = dict(zip(heads, (c.text for c in cells), strict=False))
            for cell in cells:
                field = cell.get_attribute("data-field")
                if field:
                    row[field] = cell.text
            rows.append(row)
        return rows

    def click(self, element: Any) -> Dashboard:
        """Click a link or button and wait for the page it leads to."""
        return self._submit(element)

    def click_link(self, text: str) -> Dashboard:
        return self.click(self.driver.find_element("link text", text))

    def submit_form(self, action: str, **fields: str) -> list[str]:
        """Fill the form posting to a path ending in `/action` (a select by its value, other
        fields typed), send it, and return the messages of the page it leads to."""
        from selenium.webdriver.support.ui import Select

        form = self.driver.find_element("css selector", f'form[action$="/{action}"]')
        for name, value in fields.items():
            element = form.find_element("name", name)
            if element.tag_name == "select":
                Select(element).select_by_value(value)
            else:
                element.clear()
                element.send_keys(value)
        self.click(form.find_element("tag name", "button"))
        return self.flashes()

    def phone(self) -> Dashboard:
        """A phone-sized window from now on (the test's end restores the desktop size)."""
        self.size = PHONE
        self.driver.set_window_size(*PHONE)
        return self

    def screenshot(self, name: str) -> Path | None:
        """Keep a PNG of the whole page as `SCREENSHOT_DIR/<name>.png` (when it is set)."""
        folder = os.environ.get("SCREENSHOT_DIR")
        if not folder:
            return None
        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        width, base_height = self.size
        self.driver.set_window_size(width, base_height)  # measured at the usual size
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, min(max(int(height) + 120, base_height), 6000))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(width, base_height)
        return path


@pytest.fixture
def dashboard(browser: Any, live_server: str) -> Iterator[Dashboard]:
    """A fresh browser session (no cookies) on the live server, desktop-sized."""
    browser.set_window_size(*DESKTOP)
    page = Dashboard(browser, live_server)
    try:
        yield page
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(*DESKTOP)
