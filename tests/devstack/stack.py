"""The local stack: a moto server and the Atlassian simulator on loopback, seeded with a bucket and a secret.

The demo, the tests, ``make dev`` and the benchmark all start it the same way. Nothing here reaches AWS or
Atlassian: boto3 is pointed at moto through the standard ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from assets_attach.aws.job_store import JOBS_TABLE_ATTRIBUTES, JOBS_TABLE_INDEXES
from assets_attach.runtime import get_runtime
from devstack.atlassian_sim import AtlassianSimulator
from devstack.lambda_local import LocalWorker

AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on a free loopback port; yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log would drown the demo's output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the duration of the block."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class LocalStack:
    moto_url: str
    sim: AtlassianSimulator
    bucket: str = "assets-attach-uploads"
    secret_id: str = "assets-attach/atlassian"
    webhook_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    jobs_table: str = "assets-attach-jobs"
    idempotency_table: str = "assets-attach-idempotency"
    queue_name: str = "assets-attach-jobs"
    max_receive_count: int = 3
    visibility_timeout: int = 2
    queue_url: str = ""
    dlq_url: str = ""

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.moto_url, **_boto_credentials())

    def resource(self, service: str) -> Any:
        return boto3.resource(service, endpoint_url=self.moto_url, **_boto_credentials())

    def env(self) -> dict[str, str]:
        """Every setting the engine, the CLI and the handlers read, pointed at this stack."""
        return {
            **AWS_TEST_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.moto_url,
            "ATLASSIAN_SECRET_ID": self.secret_id,
            "ASSETS_API_BASE_URL": self.sim.base_url,
            "MEDIA_ALLOWED_HOSTS": "127.0.0.1",
            "ALLOWED_BUCKETS": "",
            "UPLOADS_BUCKET": self.bucket,
            "JOBS_TABLE": self.jobs_table,
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "JOBS_QUEUE_URL": self.queue_url,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "POWERTOOLS_SERVICE_NAME": "assets-attach",
            "POWERTOOLS_METRICS_NAMESPACE": "AssetsAttach",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def secret_value(self, **overrides: Any) -> dict[str, Any]:
        return {
            "email": self.sim.email,
            "apiToken": self.sim.api_token,
            "workspaceId": self.sim.workspace_id,
            "siteUrl": self.sim.base_url,  # the simulator serves the Jira site's endpoints too
            "webhookTokens": [self.webhook_token],
            **overrides,
        }

    def put_secret(self, **overrides: Any) -> None:
        sm = self.client("secretsmanager")
        value = json.dumps(self.secret_value(**overrides))
        try:
            sm.create_secret(Name=self.secret_id, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=self.secret_id, SecretString=value)

    def seed(self) -> LocalStack:
        """What template.yaml creates: the uploads bucket, the secret, the tables and the queues."""
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self.put_secret()
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(  # with the indexes that list jobs, as template.yaml declares them
            TableName=self.jobs_table,
            KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
            AttributeDefinitions=JOBS_TABLE_ATTRIBUTES,
            GlobalSecondaryIndexes=JOBS_TABLE_INDEXES,
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.create_table(
            TableName=self.idempotency_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = self.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=f"{self.queue_name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receive_count)}
        self.queue_url = sqs.create_queue(
            QueueName=self.queue_name,
            Attributes={"VisibilityTimeout": str(self.visibility_timeout), "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        return self

    def put(self, key: str, data: bytes, content_type: str | None = None, **metadata: str) -> dict[str, Any]:
        """Put an object into the uploads bucket (user metadata as keyword arguments)."""
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if metadata:
            extra["Metadata"] = metadata
        reply: dict[str, Any] = self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        return reply

    def queue_depth(self, queue_url: str) -> int:
        """Messages in a queue, visible or in flight."""
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def enable_s3_notifications(self, prefix: str = "attachments/", queue_url: str | None = None) -> None:
        """As template.yaml wires it: ObjectCreated under the prefix goes to the jobs queue (or ``queue_url``)."""
        sqs = self.client("sqs")
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url or self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]
        self.client("s3").put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn["QueueArn"],
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                    }
                ]
            },
        )

    def worker(self, timeout_seconds: float = 300) -> LocalWorker:
        return LocalWorker(self.client("sqs"), self.queue_url, timeout_seconds=timeout_seconds)


def _boto_credentials() -> dict[str, str]:
    return {
        "region_name": AWS_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        "aws_access_key_id": AWS_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@contextmanager
def local_stack(objects: Mapping[str, str | None] | None = None) -> Iterator[LocalStack]:
    """Start moto and the simulator, seed them, and point this process's environment at them."""
    with moto_server() as moto_url, AtlassianSimulator() as sim:
        for object_id, object_key in (objects or {"1234": "HW-42"}).items():
            sim.add_object(object_id, object_key)
        stack = LocalStack(moto_url, sim, visibility_timeout=30).seed()
        stack.enable_s3_notifications()
        with patched_environ(stack.env()):
            get_runtime.cache_clear()  # handlers run in this process use this stack, not one started before it
            try:
                yield stack
            finally:
                get_runtime.cache_clear()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child ``python -m ...``, with ``devstack`` importable."""
    tests_dir = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{tests_dir}{os.pathsep}{path}" if path else tests_dir, **(extra or {})}
