"""The process's collaborators, built lazily on first use and kept for the warm container.

Each property imports its collaborator's module when it first builds it, so a handler loads only what its own
requests use: the webhook never loads the upload engine (attach, media_chunked, job_runner), the worker never
the intake (intake, attach_request). Every new Lambda instance pays its imports before its first request.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from .settings import Settings

if TYPE_CHECKING:
    import requests

    from .atlassian.assets_client import AssetsClient
    from .atlassian.jira_client import JiraClient
    from .atlassian.media_upload import MediaUploader
    from .atlassian.secret import SecretSource
    from .aws.attached_pairs import AttachedPairs
    from .aws.job_queue import JobQueue
    from .aws.job_store import JobStore
    from .aws.link_lease import LinkLeases
    from .aws.s3_source import S3Source
    from .core.attach import Attacher
    from .core.intake import Intake
    from .core.job_attempt import JobAttempt
    from .core.job_runner import JobRunner
    from .jobs import JobMessage


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def session(self) -> requests.Session:
        from .atlassian.http_session import new_session

        return new_session(connections=max(4, self.settings.media_upload_concurrency + 1))

    @cached_property
    def chunked_media_session(self) -> requests.Session:
        """The chunked upload's calls: every method retried inline on network errors and 5xx (``media_retry``)."""
        from .atlassian.http_session import media_retry, new_session

        connections = self.settings.media_upload_concurrency + 1
        return new_session(connections, retry=media_retry(), trust_env=False)  # environment read once per host

    @cached_property
    def secrets(self) -> SecretSource:
        from .atlassian.secret import SecretSource

        return SecretSource(self.settings.atlassian_secret_id)

    @cached_property
    def s3_client(self) -> Any:
        return boto3.client("s3")

    @cached_property
    def s3(self) -> S3Source:
        from .aws.s3_source import S3Source

        return S3Source(self.s3_client)

    @cached_property
    def assets(self) -> AssetsClient:
        from .atlassian.assets_client import AssetsClient

        return AssetsClient(self.session, self.settings.assets_api_base_url, self.secrets)

    @cached_property
    def jira(self) -> JiraClient:
        from .atlassian.jira_client import JiraClient

        return JiraClient(
            self.session, self.secrets, self.settings.media_allowed_hosts, self.settings.assets_api_base_url
        )

    @cached_property
    def media(self) -> MediaUploader:
        from .atlassian.media_upload import MediaUploader

        return MediaUploader(self.session, self.settings.media_allowed_hosts, self.settings.media_upload_path)

    @cached_property
    def attacher(self) -> Attacher:
        from .atlassian.media_chunked import ChunkedUploader
        from .core.attach import Attacher, UploadStyle

        settings = self.settings
        style = UploadStyle(settings.media_upload_mode, settings.chunked_min_bytes, settings.media_upload_concurrency)
        chunked = ChunkedUploader(self.chunked_media_session, settings.media_allowed_hosts)
        return Attacher(self.assets, self.media, settings.max_file_size_bytes, chunked, style)

    @cached_property
    def jobs(self) -> JobStore:
        from .aws.job_store import JobStore

        return JobStore(boto3.resource("dynamodb").Table(self.settings.require("jobs_table")))

    @cached_property
    def leases(self) -> LinkLeases:
        from .aws.link_lease import LinkLeases

        return LinkLeases(boto3.resource("dynamodb").Table(self.settings.require("jobs_table")))

    @cached_property
    def pairs(self) -> AttachedPairs:
        from .aws.attached_pairs import AttachedPairs

        return AttachedPairs(boto3.resource("dynamodb").Table(self.settings.require("jobs_table")))

    def workspace_id(self) -> str:
        """The configured Assets workspace (the secret's, or discovered once from its siteUrl)."""
        return self.assets.workspace_id(self.secrets.get())

    @cached_property
    def job_queue(self) -> JobQueue:
        from .aws.job_queue import JobQueue

        return JobQueue(boto3.client("sqs"), self.settings.require("jobs_queue_url"))

    @cached_property
    def idempotency_config(self) -> IdempotencyConfig:
        """The webhook's: the same request within 24 hours is accepted once."""
        from .core.intake import IDEMPOTENCY_KEY, IDEMPOTENCY_WINDOW_SECONDS

        return IdempotencyConfig(event_key_jmespath=IDEMPOTENCY_KEY, expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS)

    def idempotency_store(self) -> DynamoDBPersistenceLayer:
        """A persistence layer for one idempotent function (Powertools configures each for its own key)."""
        return DynamoDBPersistenceLayer(table_name=self.settings.require("idempotency_table"))

    @cached_property
    def worker_idempotency_config(self) -> IdempotencyConfig:
        """The worker's: one invocation at a time runs a job."""
        # A run on purpose (retry) is another run of the job; a message of v2 has no retry (null).
        return IdempotencyConfig(event_key_jmespath="[jobId, retry]", expires_after_seconds=3600)

    @cached_property
    def job_runner(self) -> JobRunner:
        from .core.job_runner import JobRunner

        return JobRunner(self.attacher, self.assets, self.s3, self.jira, self.jobs, self.leases, self.pairs)

    @cached_property
    def run_job_once(self) -> Callable[..., dict[str, Any]]:
        """``run_job_once(job=JobMessage, time_left=...)``: one invocation at a time per job."""

        def run(job: JobMessage, time_left: Callable[[], float]) -> dict[str, Any]:
            record = self.job_runner.run(job.jobId, job.spec, time_left=time_left)
            return {"jobId": job.jobId, "status": record.status}

        once: Callable[..., dict[str, Any]] = idempotent_function(
            data_keyword_argument="job",
            persistence_store=self.idempotency_store(),
            config=self.worker_idempotency_config,
        )(run)
        return once

    @cached_property
    def job_attempt(self) -> JobAttempt:
        """The worker's retry handling. The job runner and the queue are built when the attempt first uses them: a
        job that runs through never builds the queue's client."""
        from .core.job_attempt import JobAttempt

        def send(message: JobMessage, *, delay_seconds: int = 0) -> None:
            self.job_queue.send(message, delay_seconds=delay_seconds)

        return JobAttempt(self.run_job_once, lambda job_id, reason: self.job_runner.fail(job_id, reason), send)

    @cached_property
    def intake(self) -> Intake:
        from .core.intake import Intake

        return Intake(
            self.s3,
            self.jira,
            self.assets,
            self.pairs,
            self.jobs,
            self.job_queue,
            allowed_buckets=self.settings.webhook_buckets,
            max_file_size=self.settings.max_file_size_bytes,
            once=idempotent_function(
                data_keyword_argument="spec",
                persistence_store=self.idempotency_store(),
                config=self.idempotency_config,
            ),
        )


@cache
def get_runtime() -> Runtime:
    """One Runtime per process (per warm Lambda container); tests call ``get_runtime.cache_clear()``."""
    return Runtime(Settings.from_env())
