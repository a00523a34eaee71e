"""The dashboard's Russian catalogue: every text of its code and templates is translated, and
the compiled catalogue the package ships is the one its .po makes (a fresh clone needs no
build step to show the dashboard in Russian)."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "gateway/dashboard/translations/ru/LC_MESSAGES"


def _catalogue():
    with open(CATALOGUE / "messages.po", "rb") as handle:
        return read_po(handle, locale="ru")


def test_every_dashboard_text_has_its_russian_translation() -> None:
    with open(REPO / "babel.cfg") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    used = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(REPO), method_map, options_map, keywords=keywords
        )
    }
    catalogue = _catalogue()
    translated = set()
    for entry in catalogue:
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.id and all(strings) and not entry.fuzzy:
            translated.add(entry.id)
    assert len(used) > 150
    missing = sorted(str(m) for m in used - translated)
    assert not missing, f"run `make translations` and translate: {missing}"


def test_the_shipped_compiled_catalogue_matches_its_source() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _catalogue())
    shipped = (CATALOGUE / "messages.mo").read_bytes()
    assert compiled.getvalue() == shipped, "run `make translations` and commit messages.mo"
