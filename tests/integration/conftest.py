"""The integration tier: the real wire code against a moto server and the Atlassian simulator on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from assets_attach.observability import logger
from assets_attach.runtime import Runtime, get_runtime
from devstack.atlassian_sim import AtlassianSimulator
from devstack.lambda_local import LocalApi, LocalWorker
from devstack.log_capture import CapturedLogs
from devstack.stack import AWS_TEST_CREDENTIALS, LocalStack, moto_server, patched_environ


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url, patched_environ({**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": url}):
        yield url


@pytest.fixture
def sim() -> Iterator[AtlassianSimulator]:
    with AtlassianSimulator() as simulator:
        simulator.add_object("1234", "HW-42")
        yield simulator


@pytest.fixture
def stack(moto_url: str, sim: AtlassianSimulator) -> Iterator[LocalStack]:
    """A fresh bucket and secret on the shared moto server, and this process's environment pointed at them."""
    suffix = uuid.uuid4().hex[:12]
    stack = LocalStack(
        moto_url,
        sim,
        bucket=f"uploads-{suffix}",
        secret_id=f"atlassian-{suffix}",
        jobs_table=f"jobs-{suffix}",
        idempotency_table=f"idempotency-{suffix}",
        queue_name=f"jobs-{suffix}",
    ).seed()
    with patched_environ(stack.env()):
        yield stack


@pytest.fixture
def runtime(stack: LocalStack) -> Runtime:
    return get_runtime()


@pytest.fixture
def logs(stack: LocalStack) -> Iterator[CapturedLogs]:
    """Captures the handlers' logs; at the end, asserts that no secret appears in them."""
    capture = CapturedLogs(logger.registered_formatter)  # the package's one logger, used by every handler
    logger._logger.addHandler(capture)
    yield capture
    logger._logger.removeHandler(capture)
    assert_no_secrets(stack, capture.text)


def assert_no_secrets(stack: LocalStack, text: str) -> None:
    for secret in (stack.sim.api_token, stack.webhook_token, "Bearer ", "Basic ", "eyJ"):
        assert secret not in text, f"{secret[:6]}… leaked into the logs"


@pytest.fixture
def api(stack: LocalStack) -> Iterator[str]:
    with LocalApi() as local_api:
        yield local_api.url


@pytest.fixture
def worker(stack: LocalStack) -> LocalWorker:
    return stack.worker()
