"""The README's Jira Automation recipes, read from the README and rendered as Jira renders their smart values.

A recipe is the code block after ``<!-- recipe: name -->``. Jira renders an Assets object field's ``.objectId``
and ``{{issue.attachment.id}}`` as the values joined with ", ", and ``.jsonEncode`` as the text escaped for a JSON
string (without the quotes around it); ``rendered_values`` gives each smart value the recipes use its rendering
for one issue, so that ``make dev`` prints and the tests send exactly what a rule would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
ASSETS_FIELD = "customfield_10050"  # the README's stand-in for the rule's Assets object field
# The webhook recipes, in the order the README gives them and make dev prints them.
WEBHOOK_RECIPES = ("attachment-added", "manual-copy", "transitioned")


def rendered_values(
    issue_key: str, summary: str, object_ids: Sequence[str], attachment_ids: Sequence[str]
) -> dict[str, str]:
    """What each smart value of the recipes renders to for one issue."""
    return {
        "{{issue.key}}": issue_key,
        "{{issue.summary.jsonEncode}}": json.dumps(summary, ensure_ascii=False)[1:-1],
        f"{{{{issue.{ASSETS_FIELD}.objectId}}}}": ", ".join(object_ids),
        "{{issue.attachment.id}}": ", ".join(attachment_ids),
    }


def block(marker: str, readme: Path = README) -> str:
    """The code block after ``<!-- marker -->`` in the README."""
    match = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)
    assert match, f"the README has no block <!-- {marker} -->"
    return match.group(1)


def recipe(name: str, values: Mapping[str, str], readme: Path = README) -> str:
    """A recipe's text with its smart values rendered; every smart value in it must have a rendering."""
    text = block(f"recipe: {name}", readme)
    for smart_value, rendered in values.items():
        text = text.replace(smart_value, rendered)
    assert "{{" not in text, f"a smart value of recipe {name} has no rendering here: {text}"
    return text


def render_outcome(template: str, body: Any) -> str:
    """A rule's outcome text rendered against ``webResponse.body`` as Jira does: ``{{webResponse.body.a.b}}`` is the
    value (empty when absent), ``{{#webResponse.body.list}}…{{/}}`` repeats its inside per item, whose fields are
    named bare (``{{filename}}``)."""

    def lookup(path: str, scope: Any) -> Any:
        for part in path.split("."):
            scope = scope.get(part) if isinstance(scope, dict) else None
        return scope

    def fields(item: Any, inside: str) -> str:
        return re.sub(r"\{\{(\w+)\}\}", lambda m: str(item.get(m.group(1)) or ""), inside)

    def section(match: re.Match[str]) -> str:
        items = lookup(match.group(1), {"webResponse": {"body": body}}) or []
        return "".join(fields(item, match.group(2)) for item in items)

    text = re.sub(r"\{\{#([\w.]+)\}\}(.*?)\{\{/\}\}", section, template, flags=re.DOTALL)
    text = re.sub(
        r"\{\{(webResponse\.[\w.]+)\}\}", lambda m: str(lookup(m.group(1), {"webResponse": {"body": body}}) or ""), text
    )
    assert "{{" not in text, f"a smart value of the outcome is not rendered: {text}"
    return text
