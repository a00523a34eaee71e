"""English left in a dashboard page rendered in Russian: a text of the English catalogue
(the gettext sources), or a phrase of three English words that no catalogue rendered."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[1] / "gateway/dashboard/translations"
SKIPPED = {"script", "style", "code", "head"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
SHOWN_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%")
ENGLISH_PHRASE = re.compile(r"[A-Za-z]{2,}(?:[ ,'’]+[A-Za-z]{2,}){2,}")


def _catalogue_fragments() -> set[str]:
    """The English sources' literal parts of two words or more (between placeholders)."""
    fragments: set[str] = set()
    for po in TRANSLATIONS.glob("*/ru/LC_MESSAGES/messages.po"):
        with open(po, "rb") as handle:
            for message in read_po(handle, locale="ru"):
                ids = message.id if isinstance(message.id, tuple) else (message.id,)
                for source in ids:
                    for part in PLACEHOLDER.split(source or ""):
                        part = part.strip(" .,:;()–“”«»")
                        if len(part) >= 8 and re.search(r"[A-Za-z]+\W+[A-Za-z]+", part):
                            fragments.add(part)
    return fragments


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: is its text skipped?
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        skipped = (self.stack and self.stack[-1]) or tag in SKIPPED
        # A name written in its own language (the language switch's "English"); the page's
        # own language is the one being checked.
        skipped = skipped or (tag != "html" and given.get("lang", "ru") != "ru")
        if not skipped:
            self.texts += [v for k, v in attrs if k in SHOWN_ATTRIBUTES and v]
        if tag not in VOID:
            self.stack.append(bool(skipped))

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self.stack and self.stack[-1]) and data.strip():
            self.texts.append(" ".join(data.split()))


def untranslated(html: str, data: tuple[str, ...] = ()) -> list[str]:
    """The English a reader of the Russian page would see; `data` are texts people entered
    (a name, a note) that are right in any language."""
    parser = _VisibleText()
    parser.feed(html)
    found: list[str] = []
    fragments = _catalogue_fragments()
    for text in parser.texts:
        for known in data:
            text = text.replace(known, " ")
        found += [f for f in fragments if f in text]
        found += ENGLISH_PHRASE.findall(text)
    return sorted(set(found))
