"""How many SMS segments a text takes: GSM-7 where every character allows it, else UCS-2.

Pure functions, no I/O. The numbers are those of 3GPP TS 23.038/23.040 as carriers and
Twilio bill them:

* GSM-7: 160 septets in a single message, 153 per part of a concatenated one (the user data
  header takes the rest). Characters of the extension table (``^ { } \\ [ ~ ] | €`` and form
  feed) take two septets (escape + character), and a pair is never split between parts.
* UCS-2 (UTF-16 code units): 70 in a single message, 67 per part. One character outside the
  GSM-7 tables (a Cyrillic letter, an em dash, a typographic quote) makes the whole message
  UCS-2. Characters beyond the Basic Multilingual Plane (emoji) take two units, and a
  surrogate pair is never split between parts.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class SegmentCount:
    """A text's encoding, its length in encoding units and the segments it is billed as."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _unit_sizes(text: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _pack(sizes: list[int], per_part: int) -> int:
    """Parts needed when a character's units are never split between two parts."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts


def count_segments(text: str) -> SegmentCount:
    """The encoding and the number of segments `text` is sent (and billed) as."""
    gsm = is_gsm7(text)
    sizes = _unit_sizes(text, gsm)
    units = sum(sizes)
    single, part = (GSM7_SINGLE, GSM7_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    segments = 1 if units <= single else _pack(sizes, part)
    return SegmentCount("GSM-7" if gsm else "UCS-2", units, segments)


def segments(text: str) -> int:
    """The number of segments `text` is sent as (an empty text is one segment)."""
    return count_segments(text).segments
