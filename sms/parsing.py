"""Reading a customer's SMS reply: keywords and lenient scores. Pure: no I/O, no database.

What counts as an answer, on purpose lenient, because people do not reply as told:

* the numbers in the reply are the answers, whatever words or punctuation surround them:
  "5", " 5 ", "5!", "5 - отлично", "оценка 4", "Ответ: 3." are one answer each;
* several numbers answer the current question and the ones after it, in order:
  "4 5 3 5 4", "4,5,3,5,4", "4;5;3" (a comma separates answers: "4,5" is two answers,
  never four and a half, since no question takes fractions);
* a number written as a word ("пять", "five") counts as that number when the reply has no
  digits at all;
* "5 из 5", "5/5", "5 of 5", "4 out of 5" are the first number only (the scale is not
  an answer).

Refused (the caller re-prompts): no number at all, a number out of the question's range, a
number with more than two digits (a phone number, "100%"), a decimal ("4.5"), more numbers than
questions remain, or any number out of range for the question it would answer.

Keywords follow the carriers: the whole reply, case-insensitive, surrounding spaces and
punctuation ignored ("Stop", "stop!" are STOP; "please stop texting me" is not).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence


class Keyword(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    YES = "yes"  # opts back in only a customer who has opted out


KEYWORDS: dict[str, Keyword] = {
    **{
        word: Keyword.OPT_OUT
        for word in (
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "СТОП",
            "ОТПИСАТЬСЯ",
        )
    },
    **{word: Keyword.OPT_IN for word in ("START", "UNSTOP", "СТАРТ")},
    **{word: Keyword.HELP for word in ("HELP", "INFO", "ПОМОЩЬ")},
    "YES": Keyword.YES,
}

_EDGE_NOISE = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)


def keyword_of(text: str) -> tuple[Keyword, str] | None:
    """The keyword a whole reply is, with its canonical spelling, or None."""
    word = _EDGE_NOISE.sub("", text or "").upper().replace("Ё", "Е")
    found = KEYWORDS.get(word)
    return (found, word) if found is not None else None


_WORD_NUMBERS = {
    "ноль": 0,
    "нуль": 0,
    "один": 1,
    "одна": 1,
    "единица": 1,
    "два": 2,
    "две": 2,
    "двойка": 2,
    "три": 3,
    "тройка": 3,
    "четыре": 4,
    "четверка": 4,
    "пять": 5,
    "пятерка": 5,
    "шесть": 6,
    "семь": 7,
    "восемь": 8,
    "девять": 9,
    "десять": 10,
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
# The scale written after the score: "5 из 5", "5/5", "4 of 5", "4 out of 5".
_SCALE = re.compile(r"(?:/|\bиз\b|\bout\s+of\b|\bof\b)\s*(?:5|10)(?!\d)", re.IGNORECASE)
_DECIMAL = re.compile(r"\d[.]\d")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MAX_REPLY_CHARS = 1600  # Twilio's own limit for one message body


def numbers_in(text: str) -> tuple[int, ...] | None:
    """The numbers a reply gives, in order; None when it gives none or is not a clear answer."""
    text = (text or "")[:MAX_REPLY_CHARS]
    text = _SCALE.sub(" ", text)
    if _DECIMAL.search(text):
        return None
    digits = _NUMBER.findall(text)
    if digits:
        if any(len(d) > 2 for d in digits):
            return None
        return tuple(int(d) for d in digits)
    words = [
        _WORD_NUMBERS[w]
        for w in (m.lower().replace("ё", "е") for m in _WORD.findall(text))
        if w in _WORD_NUMBERS
    ]
    return tuple(words) or None


def parse_answers(text: str, ranges: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """The answers a reply gives to the questions whose ranges are `ranges` (the current one
    first); an empty tuple when the reply does not answer them (the caller re-prompts).

    Every value returned lies within the range of the question it answers.
    """
    if not ranges:
        return ()
    found = numbers_in(text)
    if not found or len(found) > len(ranges):
        return ()
    if any(not low <= value <= high for value, (low, high) in zip(found, ranges, strict=False)):
        return ()
    return found
