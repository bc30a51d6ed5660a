"""Drift canary Lambda: on a schedule, ``doctor --live``'s single upload against ``CANARY_OBJECT_ID``.

Every step runs for real through the engine (see live_check) and the test attachment is deleted where the delete
call answers. The metric ``CanaryFailed`` is 1 when a step failed or a reply lacked a field the engine needs, and
0 when every step matched; the template's alarm on it notifies the alarm topic. The report's rows are logged
(steps, elided paths, statuses, field names: nothing secret).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..live_check import run_live_check
from ..observability import logger, metrics
from ..settings import Settings


@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed = True  # also when the check itself cannot start (settings, secret): the metric still says so
    try:
        settings = Settings.from_env()
        report = run_live_check(settings, settings.require("canary_object_id"), field_name="CANARY_OBJECT_ID")
        failed = not report.ok
        summary = {"ok": report.ok, "failedSteps": list(report.failed_steps), "calls": len(report.calls)}
        (logger.error if failed else logger.info)("drift canary", extra={**summary, "report": report.lines()})
        return summary
    finally:
        metrics.add_metric(name="CanaryFailed", unit=MetricUnit.Count, value=1 if failed else 0)
