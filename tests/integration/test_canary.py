"""The drift canary's handler against the simulator, with the local stack's settings (the secret in moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from assets_attach.errors import ConfigError
from assets_attach.handlers import canary
from devstack.atlassian_sim import Fault
from devstack.lambda_local import LambdaContext, load_event
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack, patched_environ


@pytest.fixture
def canary_env(stack: LocalStack) -> Iterator[None]:
    with patched_environ({"CANARY_OBJECT_ID": "1234"}):
        yield


def canary_failed(stdout: str) -> list[float]:
    """The CanaryFailed values of the EMF lines Powertools printed."""
    values: list[float] = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"CanaryFailed"' in line:
            document: dict[str, Any] = json.loads(line)
            (metrics,) = document["_aws"]["CloudWatchMetrics"]
            assert metrics["Namespace"] == "AssetsAttach"
            assert document["service"] == "assets-attach"
            value = document["CanaryFailed"]
            values.extend(value if isinstance(value, list) else [value])
    return values


def test_a_passing_run_publishes_canary_failed_0_and_leaves_no_attachment(
    stack: LocalStack, canary_env: None, logs: CapturedLogs, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = canary.lambda_handler(load_event("canary_schedule.json"), LambdaContext())

    assert answer == {"ok": True, "failedSteps": [], "calls": 4}
    assert canary_failed(capsys.readouterr().out) == [0]
    assert stack.sim.attachments("1234") == []
    assert [r.method for r in stack.sim.requests] == ["GET", "POST", "POST", "DELETE"]  # single upload only
    assert "drift canary" in logs.text and "every step matched" in logs.text


def test_a_failing_step_publishes_canary_failed_1_and_names_it(
    stack: LocalStack, canary_env: None, logs: CapturedLogs, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sim.inject("link", Fault(status=500))

    answer = canary.lambda_handler(load_event("canary_schedule.json"), LambdaContext())

    assert answer["ok"] is False and answer["failedSteps"] == ["link"]
    assert canary_failed(capsys.readouterr().out) == [1]
    assert "FAIL  link did not match" in logs.text


def test_a_canary_that_cannot_start_still_publishes_canary_failed_1(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with patched_environ({"CANARY_OBJECT_ID": None}), pytest.raises(ConfigError, match="CANARY_OBJECT_ID"):
        canary.lambda_handler(load_event("canary_schedule.json"), LambdaContext())
    assert canary_failed(capsys.readouterr().out) == [1]
