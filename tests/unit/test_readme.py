"""The README holds what a deployer reads against what the project has: every template parameter in its table."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]


def readme_parameter_table() -> dict[str, str]:
    """The README's parameter table (under "### Parameters"): name → default as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### Parameters\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section, re.MULTILINE)
    assert rows, "the README has no parameter table under ### Parameters"
    return {name: default.strip() for name, default in rows}


def test_readme_lists_every_template_parameter_and_no_other() -> None:
    template = load_template(ROOT / "template.yaml")
    assert sorted(readme_parameter_table()) == sorted(template["Parameters"])


def test_readme_parameter_defaults_match_the_template() -> None:
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    for name, written in readme_parameter_table().items():
        default = str(parameters[name].get("Default", ""))
        if default:
            assert f"`{default}`" in written, f"{name}: the README says {written!r}, the template {default!r}"
        else:
            assert written.startswith("empty"), f"{name}: the README says {written!r}, the template has no default"


def test_readme_keeps_the_module_map_in_architecture_md() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "ARCHITECTURE.md" in readme
    assert "| `runtime.py` |" not in readme  # the module map lives in ARCHITECTURE.md only
    assert "| `runtime.py` |" in (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
