"""Assets objects as rules and users name them: one id (``1234``, ``"1234"``, ``"<workspaceId>:1234"``), one
key (``HW-42``), or several of either, as a list or as one string separated by commas and/or whitespace (what
an Assets custom field's smart value renders for a multi-object field)."""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import BadRequestError

MAX_OBJECTS = 20
MAX_ITEMS = 10 * MAX_OBJECTS  # items read at all (repeats allowed), before the MAX_OBJECTS distinct ones are counted
_OBJECT_ID = re.compile(r"^(?:([0-9A-Za-z-]+):)?([1-9][0-9]{0,18})$")
_OBJECT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[1-9][0-9]*$")
_SEPARATORS = re.compile(r"[\s,]+")


def normalize_object_id(value: object, workspace_id: Callable[[], str], field: str = "objectId") -> str:
    """The numeric id as a string. The workspace prefix that Assets custom fields carry must be the configured
    workspace's (``workspace_id()``, asked only when a prefix is given): another workspace's object id would
    name a different object here."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequestError("must be a number or a string like '1234' or '<workspaceId>:1234'", field=field)
    match = _OBJECT_ID.match(str(value).strip())
    if not match:
        raise BadRequestError(f"{str(value)[:80]!r} is not an Assets object id", field=field)
    prefix, object_id = match.groups()
    if prefix is not None and prefix != workspace_id():
        raise BadRequestError(
            f"{prefix}:{object_id} belongs to another Assets workspace than the one configured", field=field
        )
    return object_id


def normalize_object_key(value: object, field: str = "objectKey") -> str:
    """An object key such as ``HW-42``."""
    if not isinstance(value, str) or not _OBJECT_KEY.match(value.strip()):
        raise BadRequestError(f"{str(value)[:80]!r} is not an Assets object key like 'HW-42'", field=field)
    return value.strip()


def listed_items(value: object, field: str) -> list[tuple[object, str]]:
    """Each given item with the field that names it: ``objectId[2]`` in a list, else the field itself. One string
    is split at commas and/or whitespace, as Jira renders a list smart value (``"10000, 10001"``): the one way
    every field that takes several ids reads them. More than MAX_ITEMS items are refused before any is parsed (a
    request of a million ids costs no more than one of 20)."""
    if isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise BadRequestError(f"lists {len(value)} items; at most {MAX_OBJECTS} per request", field=field)
        return [(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str):
        parts = _SEPARATORS.split(value.strip(), maxsplit=MAX_ITEMS)
        if len(parts) > MAX_ITEMS:
            raise BadRequestError(f"lists over {MAX_ITEMS} items; at most {MAX_OBJECTS} per request", field=field)
        return [(part, field) for part in parts if part]
    return [(value, field)]


def _distinct(values: list[str], field: str) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(values))
    if not unique:
        raise BadRequestError("names no object", field=field)
    if len(unique) > MAX_OBJECTS:
        raise BadRequestError(f"names {len(unique)} objects; at most {MAX_OBJECTS} per request", field=field)
    return unique


def parse_object_ids(value: object, workspace_id: Callable[[], str], field: str = "objectId") -> tuple[str, ...]:
    """One or several object ids, each normalized, in the order given, without repeats."""
    ids = [normalize_object_id(item, workspace_id, name) for item, name in listed_items(value, field)]
    return _distinct(ids, field)


def parse_object_keys(value: object, field: str = "objectKey") -> tuple[str, ...]:
    """One or several object keys, in the order given, without repeats."""
    return _distinct([normalize_object_key(item, name) for item, name in listed_items(value, field)], field)
