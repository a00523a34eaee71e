"""Signing in to the dashboard with Flask's test client, as a browser does."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import ACCOUNT_PASSWORD


def csrf(page_html: str) -> str:
    """The CSRF token of a page's forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    if found is None:
        raise LookupError("no form with a CSRF token on this page")
    return found.group(1)


def sign_in(client: Any, username: str, password: str = ACCOUNT_PASSWORD) -> Any:
    """The sign-in form (and its CSRF token) first, then the post."""
    token = csrf(client.get("/dashboard/login").get_data(as_text=True))
    return client.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf_token": token},
    )
