"""The one Logger, Tracer and Metrics of the package (Powertools), named once.

Every module logs through this logger, so the correlation keys a handler appends (``jobId``,
``objectId``, ``bucket``, ``key``) appear on every line of that invocation.

Tracing is on in Lambda unless ``POWERTOOLS_TRACE_DISABLED`` says otherwise (Powertools' rule). When it is
off, the Tracer gets a provider that does nothing, so the X-Ray SDK is never imported: its recorder is built
at import, and outside Lambda (tests, the CLI) it builds an X-Ray client for sampling rules, about 0.2 s.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

SERVICE = "assets-attach"
NAMESPACE = "AssetsAttach"


class TracingOff(BaseProvider, BaseSegment):
    """The Tracer's provider while tracing is off: every subsegment is this object, and every call does nothing."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[TracingOff]:
        yield self

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[TracingOff]:
        yield self

    def put_annotation(self, *args: Any, **kwargs: Any) -> None:
        pass

    put_metadata = add_exception = close = add_subsegment = remove_subsegment = patch = patch_all = put_annotation


def _tracer() -> Tracer:
    if Tracer._is_tracer_disabled():  # Powertools' own rule (the version is pinned; a unit test covers both ways)
        return Tracer(service=SERVICE, disabled=True, provider=TracingOff())
    # A subsegment per AWS call (botocore) and per Atlassian call (requests): all the HTTP this code makes.
    # Patching every library X-Ray knows (the default) would also import sqlite3 and the like, never used here.
    return Tracer(service=SERVICE, patch_modules=("botocore", "requests"))


logger = Logger(service=SERVICE)
tracer = _tracer()
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# A status lookup records no metric; that is expected, not worth a warning on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
