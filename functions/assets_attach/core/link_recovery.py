"""After an interrupted link: is the attachment there, and is it provably ours? Pure rules, no I/O.

Before step 3 the worker notes a bounded marker of the object's attachments (the highest attachment id, and the
lease generation it holds). When the link's outcome was lost, the retry lists the object's attachments again:
a *candidate* is an attachment newer than the marker with the file's name and size. Candidates that other
lease generations made in between are set aside. What remains decides:

- no candidate at all: the link never happened; link again;
- exactly one, and every generation in between accounted for: it is ours; adopt it;
- anything else: ambiguous; the file fails with a reason, and nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..atlassian.assets_client import Attachment
from ..job_record import LinkMarker

_HUMAN_SIZE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*([kKMGT]?i?B|bytes?)?\s*$")
_UNIT_POWER = {
    "b": 0,
    "byte": 0,
    "bytes": 0,
    "kb": 1,
    "kib": 1,
    "mb": 2,
    "mib": 2,
    "gb": 3,
    "gib": 3,
    "tb": 4,
    "tib": 4,
}


def marker_before_link(attachments: Iterable[Attachment], generation: int) -> LinkMarker:
    ids = [a.id for a in attachments]
    numeric = all(i.isdigit() for i in ids)
    return LinkMarker(afterId=max((int(i) for i in ids), default=0) if numeric else None, generation=generation)


def size_matches(reported: str | None, size: int) -> bool:
    """Assets reports a size as text such as ``"1.2 MB"``; True where it can stand for ``size`` bytes (1000- or
    1024-based, rounded to the digits shown). An unreadable size proves nothing either way, so it matches."""
    match = _HUMAN_SIZE.match(reported or "")
    if not match:
        return True
    number, unit = match.group(1).replace(",", "."), (match.group(2) or "b").lower()
    value, power = float(number), _UNIT_POWER.get(unit, 0)
    decimals = len(number.partition(".")[2])
    for base in (1024, 1000):
        scale = base**power
        if abs(value * scale - size) <= 0.5 * 10**-decimals * scale:
            return True
    return False


def candidates(attachments: Iterable[Attachment], marker: LinkMarker, filename: str, size: int) -> list[str]:
    """Attachments that could be the one the interrupted link made."""
    after = marker.afterId
    return [
        a.id
        for a in attachments
        if (after is None or (a.id.isdigit() and int(a.id) > after))
        and a.filename == filename
        and size_matches(a.filesize, size)
    ]


@dataclass(frozen=True)
class Recovery:
    action: Literal["adopt", "relink", "ambiguous"]
    attachment_id: str | None = None
    reason: str = ""


def decide_recovery(found: list[str], made_by_others: set[str] | None) -> Recovery:
    """``found``: the candidates; ``made_by_others``: what other lease generations linked in between, or None
    where some generation left no record."""
    if not found:
        return Recovery("relink")
    if made_by_others is None:
        return Recovery(
            "ambiguous",
            reason=f"attachment(s) {', '.join(found)} match this file, but another link ran meanwhile "
            "whose outcome is unknown",
        )
    ours = [a for a in found if a not in made_by_others]
    if not ours:
        return Recovery("relink")
    if len(ours) == 1:
        return Recovery("adopt", ours[0])
    return Recovery("ambiguous", reason=f"attachments {', '.join(ours)} all match this file")
