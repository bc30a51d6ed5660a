"""What a release promises: one version everywhere it is shown, a license, a changelog, readable --help."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from assets_attach import __version__
from assets_attach.api_document import build
from assets_attach.atlassian.http_session import USER_AGENT
from assets_attach.handlers.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_written_once_and_shown_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert version("assets-attach") == __version__, "the package metadata reads it (run make install after a bump)"
    assert build()["info"]["version"] == __version__
    assert USER_AGENT.endswith(f"/{__version__}")
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"assets-attach {__version__}"
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[tool.setuptools.dynamic]")[0]
    assert "\nversion =" not in project, "pyproject.toml reads the version from the package"


def test_the_changelog_has_this_version_and_the_license_is_apache_2() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[?{re.escape(__version__)}\]?", changelog, re.MULTILINE)
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert "the assets-attach authors" in license_text


def test_help_texts_carry_no_markup() -> None:
    """The module docstrings use RST ``literals``; --help shows text to a terminal, where they are noise."""
    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        texts += [sub.format_help() for sub in getattr(action, "choices", {}).values()]
    assert len(texts) > 1
    for text in texts:
        assert "``" not in text, text
