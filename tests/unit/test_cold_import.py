"""What importing a handler loads, in a fresh interpreter as a new Lambda instance does (issue 12 §4).

Each handler loads what its own requests use and nothing only the other needs; nothing builds a client at
import (the Runtime builds them on first use); the X-Ray SDK is loaded only when Powertools traces. Not timed:
``python -m devstack.cold_import`` measures the import times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions")
HANDLERS = ("webhook", "worker")

# Where the handler is imported: Powertools traces only in Lambda, and not with POWERTOOLS_TRACE_DISABLED.
SETTINGS: dict[str, dict[str, str]] = {
    "Lambda, tracing on": {"LAMBDA_TASK_ROOT": FUNCTIONS},
    "Lambda, tracing off": {"LAMBDA_TASK_ROOT": FUNCTIONS, "POWERTOOLS_TRACE_DISABLED": "true"},
    "outside Lambda": {},  # tests, the CLI, the local stack
}

# What only the other handler needs.
NOT_IN = {
    "webhook": {
        "assets_attach.core.attach",
        "assets_attach.core.job_attempt",
        "assets_attach.atlassian.media_chunked",
        "assets_attach.core.job_runner",
        "assets_attach.core.link_recovery",
        "assets_attach.aws.link_lease",
        "assets_attach.aws.attached_pairs",
        "assets_attach.core.s3_drop",
        "aws_lambda_powertools.utilities.batch",
    },
    "worker": {
        "assets_attach.core.intake",
        "assets_attach.attach_request",
        "assets_attach.api_document",
        "aws_lambda_powertools.event_handler",
    },
}
# Powertools' pydantic event models: neither handler parses events with them.
NOT_IN_EITHER = {"aws_lambda_powertools.utilities.parser"}

# Imports the handler and reports what it loaded and which clients were built meanwhile.
PROBE = """
import json, sys
import botocore.session, requests

built = []
create_client = botocore.session.Session.create_client
def counting_create_client(self, *args, **kwargs):
    built.append(args[0] if args else kwargs["service_name"])
    return create_client(self, *args, **kwargs)
botocore.session.Session.create_client = counting_create_client
session_init = requests.Session.__init__
def counting_session_init(self):
    built.append("requests.Session")
    session_init(self)
requests.Session.__init__ = counting_session_init

import assets_attach.handlers.{handler}
from assets_attach.observability import tracer
from assets_attach.runtime import get_runtime

print(json.dumps({{
    "modules": sorted(sys.modules),
    "clients": built,
    "tracing": not tracer.disabled,
    "runtimes": get_runtime.cache_info().currsize,
}}))
"""

Key = tuple[str, str]


@pytest.fixture(scope="module")
def imported() -> dict[Key, dict[str, Any]]:
    """Every (handler, setting) in its own interpreter, run side by side."""
    base = {k: v for k, v in os.environ.items() if k not in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED")}
    base["PYTHONPATH"] = FUNCTIONS
    running = {
        (handler, setting): subprocess.Popen(
            [sys.executable, "-c", PROBE.format(handler=handler)],
            env={**base, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for handler in HANDLERS
        for setting, extra in SETTINGS.items()
    }
    reports = {}
    for key, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        reports[key] = json.loads(out)
    return reports


CASES = [pytest.param(h, s, id=f"{h}, {s}") for h in HANDLERS for s in SETTINGS]


@pytest.mark.parametrize(("handler", "setting"), CASES)
def test_a_handler_loads_nothing_only_the_other_needs(
    imported: dict[Key, dict[str, Any]], handler: str, setting: str
) -> None:
    loaded = set(imported[handler, setting]["modules"])
    assert f"assets_attach.handlers.{handler}" in loaded
    assert loaded & (NOT_IN[handler] | NOT_IN_EITHER) == set()


@pytest.mark.parametrize(("handler", "setting"), CASES)
def test_nothing_builds_a_client_at_import(imported: dict[Key, dict[str, Any]], handler: str, setting: str) -> None:
    report = imported[handler, setting]
    assert report["clients"] == []  # no boto3 or botocore client, no requests session (X-Ray's included)
    assert report["runtimes"] == 0


@pytest.mark.parametrize(("handler", "setting"), CASES)
def test_x_ray_is_loaded_only_when_tracing(imported: dict[Key, dict[str, Any]], handler: str, setting: str) -> None:
    report = imported[handler, setting]
    tracing = setting == "Lambda, tracing on"
    assert report["tracing"] is tracing
    assert ("aws_xray_sdk.core" in report["modules"]) is tracing
