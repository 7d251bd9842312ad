"""Slack's message limits, and cutting alert text to fit them without hiding that it was cut.

Slack refuses a whole message (``invalid_blocks``) when one text is a character
too long, so every text that carries alert data (names, descriptions, labels)
goes through :func:`fit` or :func:`clip` before it reaches a block. A cut keeps
whole lines first, then whole items of a ``, `` list (participants), then
characters, and says what it left out ("… and 57 more"). It never splits
Slack's escapes (``&amp;``) or tokens (``<!date^…>``, ``<@U…>``).

Lengths are counted in UTF-16 code units: Slack does not say whether it counts
those or code points, and the first is never the smaller.
"""

from __future__ import annotations

import unicodedata

# The limits alert data can reach. The others are met by how messages are built: at most
# 4 fields a section, 1 element a context, 3 buttons an actions block, fixed button texts
# and action_ids, and block_ids and button values made of a fingerprint and a thread key.
SECTION_TEXT = 3000  # a section block's text
FIELD_TEXT = 2000  # each of a section's fields
TEXT_OBJECT = 3000  # any other text object, e.g. a context element
HEADER_TEXT = 150  # a header block's plain_text
MESSAGE_BLOCKS = 50
# Slack truncates a message's ``text`` at 40,000 characters and advises 4,000: past that
# nobody reads it on a phone, and a thread reply or the plain-text fallback stays one screen.
MESSAGE_TEXT = 4000

ELLIPSIS = "…"
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # zero-width joiner, variation selectors


def size(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (an emoji beyond U+FFFF is two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prefix(text: str, budget: int) -> str:
    """The longest start of ``text`` within ``budget`` that ends between characters a
    reader sees as one: not inside ``&amp;``, a ``<…>`` token or an emoji sequence."""
    end = max(0, min(len(text), budget))
    while end > 0 and (over := size(text[:end]) - budget) > 0:
        end -= max(1, (over + 1) // 2)
    amp = text.rfind("&", 0, end)
    if amp != -1 and ";" not in text[amp:end]:
        end = amp
    if _in_token(text, end):
        end = text.rfind("<", 0, end)
    while 0 < end < len(text) and (
        unicodedata.combining(text[end]) or text[end] in _JOINERS or text[end - 1] == "\u200d"
    ):
        end -= 1
    return text[:end]


def _in_token(text: str, end: int) -> bool:
    """Would ending ``text`` at ``end`` split a ``<…>`` token?"""
    lt = text.rfind("<", 0, end)
    return lt != -1 and ">" not in text[lt:end]


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit``, ending in "…" if cut: for one-line labels like a header."""
    if size(text) <= limit:
        return text
    return _prefix(text, limit - size(ELLIPSIS)).rstrip() + ELLIPSIS


def _more(count: int, unit: str = "") -> str:
    """ "… and 3 more lines": what a cut left out, after what it kept."""
    if unit:
        unit = " " + (unit if count == 1 else unit + "s")
    return f"{ELLIPSIS} and {count} more{unit}"


def _cut_items(line: str, room: int) -> str | None:
    """The line's leading ``, ``-separated items that fit with "… and N more"; None if
    the line is no list or not even its first item fits."""
    items = line.split(", ")
    if len(items) < 3:
        return None
    best = None
    used = -2  # no separator before the first item
    for count, item in enumerate(items[:-1], start=1):
        used += 2 + size(item)
        candidate_size = used + 2 + size(_more(len(items) - count))
        if candidate_size > room:
            break
        best = count
    if best is None:
        return None
    return ", ".join(items[:best]) + ", " + _more(len(items) - best)


def _cut_line(line: str, room: int) -> str | None:
    """One line cut into ``room``: whole items where it is a list, else characters."""
    listed = _cut_items(line, room)
    if listed is not None:
        return listed
    note = _more(len(line), "character")
    head = _prefix(line, room - size(note) - 1)
    space = head.rfind(" ", max(0, len(head) - 40))  # end on a word where one is near
    if space > 0 and not _in_token(head, space):  # a date token has spaces inside
        head = head[:space]
    head = head.rstrip()
    if not head:
        return None
    return f"{head} {_more(len(line) - len(head), 'character')}"


def fit(text: str, limit: int) -> str:
    """``text`` (escaped mrkdwn, or plain) within ``limit``, cut as the module says."""
    if size(text) <= limit:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    used = -1  # joined size of ``kept``: no newline before the first line
    for index, line in enumerate(lines):
        after = len(lines) - index - 1
        note = _more(after, "line") if after else ""
        reserve = 1 + size(note) if after else 0
        if used + 1 + size(line) + reserve <= limit:
            kept.append(line)
            used += 1 + size(line)
            continue
        part = _cut_line(line, limit - used - 1 - reserve)
        if part is not None:
            kept.append(part)
            if note:
                kept.append(note)
        else:  # room was kept for this note when the line before was taken
            kept.append(_more(after + 1, "line"))
        break
    out = "\n".join(kept)
    return out if size(out) <= limit else clip(out, limit)  # only for a tiny limit
