"""The dashboard's Russian catalogues (one per page group): every text of its code and
templates is translated in one of them, and each compiled catalogue the package ships is the
one its .po makes (a fresh clone needs no build step to show the dashboard in Russian)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "gateway/dashboard"
GROUPS = sorted(p.parent for p in (DASHBOARD / "translations").glob("*/babel.cfg"))


def _catalogue(group: Path):
    with open(group / "ru/LC_MESSAGES/messages.po", "rb") as handle:
        return read_po(handle, locale="ru")


def test_every_dashboard_text_has_its_russian_translation() -> None:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    used = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(DASHBOARD), method_map, keywords=keywords
        )
    }
    translated = set()
    for group in GROUPS:
        for entry in _catalogue(group):
            strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            if entry.id and all(strings) and not entry.fuzzy:
                translated.add(entry.id)
    assert len(used) > 150
    missing = sorted(str(m) for m in used - translated)
    assert not missing, f"run `make translations` and translate: {missing}"


@pytest.mark.parametrize("group", GROUPS, ids=lambda p: p.name)
def test_each_shipped_compiled_catalogue_matches_its_source(group: Path) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _catalogue(group))
    shipped = (group / "ru/LC_MESSAGES/messages.mo").read_bytes()
    assert compiled.getvalue() == shipped, "run `make translations` and commit messages.mo"
