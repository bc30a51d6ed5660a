"""Text a Jira rule prints as it is: an error's message, a job's summary, each one sentence."""

from __future__ import annotations

import re

# Messages written as what is wrong with a field ("is required (or give s3Uri)") take the field as their subject.
_PREDICATE = re.compile(r"(?:is|are|must|names|has|was)\b")
_PLAIN_WORD = re.compile(r"[a-z]+(?=[ ,;])")  # "the body …", not "files[0].key: …", "s3://…" or "'abc' …"


def as_sentence(text: str, subject: str | None = None) -> str:
    """``text`` as one sentence: ``subject`` put first where the text is a predicate of it, the first word
    capitalised where it is a plain word (never an identifier, a URI or a quote), a full stop at the end."""
    text = " ".join(text.split())
    if subject and _PREDICATE.match(text):
        text = f"{subject} {text}"
    elif _PLAIN_WORD.match(text):
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."
