"""Webhook Lambda behind API Gateway (REST): ``POST /attachments``, ``GET /attachments/jobs/{jobId}`` and
``GET /attachments/jobs`` (find jobs by issue, object, S3 file or status).

Thin by design: authenticate, parse, hand over to the intake or the job store, and map the result. Every
error becomes ``{"error": {"code", "message", "field"?}}`` with its status, in ``on_attach_error`` alone.
"""

from __future__ import annotations

import hmac
import json
import time
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from ..api_document import ErrorDetail, ErrorReply, JobAccepted, JobList
from ..attach_request import parse_attach_request
from ..aws.job_store import JobExistsError
from ..errors import (
    AttachError,
    BadRequestError,
    BucketNotAllowedError,
    FileTooLargeError,
    InternalError,
    JobInProgressError,
    JobNotFoundError,
    JobNotRetryableError,
    ObjectNotFoundError,
    RouteNotFoundError,
    SourceAccessError,
    SourceNotFoundError,
    UnauthorizedError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from ..job_listing import encode_cursor, parse_job_query
from ..job_record import JobRecord
from ..jobs import JobMessage
from ..observability import logger, metrics, tracer
from ..runtime import get_runtime
from ..sentences import as_sentence

app = APIGatewayRestResolver()
# API Gateway gives a Lambda integration 29 s from the moment it received the request, a cold start's init included:
# a wait ends this long before that (and before this invocation's own timeout), to answer in time.
API_GATEWAY_SECONDS = 29.0
ANSWER_MARGIN_SECONDS = 4.0


HTTP_STATUS: dict[type[AttachError], HTTPStatus] = {
    BadRequestError: HTTPStatus.BAD_REQUEST,
    UnauthorizedError: HTTPStatus.UNAUTHORIZED,
    BucketNotAllowedError: HTTPStatus.FORBIDDEN,
    SourceAccessError: HTTPStatus.FORBIDDEN,
    SourceNotFoundError: HTTPStatus.NOT_FOUND,
    ObjectNotFoundError: HTTPStatus.NOT_FOUND,
    JobNotFoundError: HTTPStatus.NOT_FOUND,
    JobInProgressError: HTTPStatus.CONFLICT,
    JobNotRetryableError: HTTPStatus.CONFLICT,
    FileTooLargeError: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    UnsupportedMediaTypeError: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
}


def json_response(status: HTTPStatus, answer: BaseModel | dict[str, Any]) -> Response[str]:
    body = answer.model_dump_json(exclude_none=True) if isinstance(answer, BaseModel) else json.dumps(answer)
    return Response(status_code=status, content_type="application/json", body=body)


def error_response(status: HTTPStatus, code: str, message: str, field: str | None = None) -> Response[str]:
    """Every refusal's body; its message one sentence a rule can print (``{{webResponse.body.error.message}}``)."""
    detail = ErrorDetail(code=code, message=as_sentence(message, field), field=field or None)
    return json_response(status, ErrorReply(error=detail))


def authorize() -> None:
    """The Bearer token must be one of the secret's ``webhookTokens`` (compared in constant time)."""
    scheme, _, token = (app.current_event.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("send Authorization: Bearer <webhook token>", field="Authorization")
    given = token.strip().encode()
    valid = get_runtime().secrets.get().webhook_tokens
    if not any(hmac.compare_digest(given, t.get_secret_value().encode()) for t in valid):
        raise UnauthorizedError("the webhook token is not valid", field="Authorization")


def json_body() -> Any:
    content_type = (app.current_event.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError("send the body as JSON with Content-Type: application/json", field="body")
    try:
        data = json.loads(app.current_event.decoded_body or "")
    except ValueError as e:
        raise BadRequestError(f"the body is not valid JSON ({e})", field="body") from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply", field="body") from None
    try:  # JSON may escape lone surrogates ("\\ud800"), which no later step could encode
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequestError(
            "the body holds text that is not valid Unicode (a lone surrogate)", field="body"
        ) from None
    return data


def status_url(job_id: str) -> str:
    event = app.current_event
    proto = event.headers.get("X-Forwarded-Proto") or "https"
    host = event.request_context.domain_name or event.headers.get("Host", "")
    path = (event.request_context.path or event.path).rstrip("/")
    return f"{proto}://{host}{path}/jobs/{job_id}"


@app.post("/attachments")
@tracer.capture_method(capture_response=False, capture_error=False)
def create_job() -> Response[str]:
    authorize()
    request = parse_attach_request(json_body(), get_runtime().workspace_id)
    logger.append_keys(objectId=",".join(request.objects), issueKey=request.issue_key)
    try:
        job_id = get_runtime().intake.accept(request)["jobId"]
    except IdempotencyAlreadyInProgressError:
        raise JobInProgressError("the same request is being accepted right now; send it again shortly") from None
    logger.append_keys(jobId=job_id)
    logger.info("job accepted")
    metrics.add_metric(name="JobsAccepted", unit=MetricUnit.Count, value=1)
    if request.wait_seconds:
        finished = wait_for(job_id, request.wait_seconds)
        if finished is not None:
            status = HTTPStatus.OK if finished.status == "succeeded" else HTTPStatus.UNPROCESSABLE_ENTITY
            return json_response(status, {**finished.public_view(), "statusUrl": status_url(job_id)})
    return json_response(HTTPStatus.ACCEPTED, JobAccepted(jobId=job_id, statusUrl=status_url(job_id)))


def wait_budget(requested: float, *, invocation_left: float, received: float, now: float) -> float:
    """Seconds a wait may last: what the request asked, within this invocation's time left and API Gateway's 29 s
    since it ``received`` the request (epoch seconds; 0 where unknown), keeping ANSWER_MARGIN_SECONDS to answer."""
    gateway_left = received + API_GATEWAY_SECONDS - now if received else invocation_left
    return max(0.0, min(requested, invocation_left, gateway_left) - ANSWER_MARGIN_SECONDS)


def wait_for(job_id: str, seconds: float) -> JobRecord | None:
    """The finished job, watched in its record (the worker does the work), or None when time ran out or the
    record cannot be read (the job is queued all the same: the caller answers 202). The wait ends early enough for
    API Gateway's 29 s, counted from when it received the request, and for this invocation's own timeout."""
    budget = wait_budget(
        seconds,
        invocation_left=app.lambda_context.get_remaining_time_in_millis() / 1000,
        received=app.current_event.request_context.request_time_epoch / 1000,
        now=time.time(),
    )
    try:
        return get_runtime().jobs.wait_until_done(job_id, budget)
    except AttachError as e:
        logger.warning("the job's record cannot be read; answering that it is queued", extra={"error": str(e)})
        return None


@app.post("/attachments/jobs/<job_id>/retry")
@tracer.capture_method(capture_response=False, capture_error=False)
def retry_job(job_id: str) -> Response[str]:
    """Run a failed job again on purpose (the object created since, the token rotated): its failed pairs only; the
    attached ones stay as they are. 409 unless the job is failed."""
    authorize()
    runtime = get_runtime()
    record = runtime.jobs.get(job_id) if job_id.isalnum() and len(job_id) <= 64 else None
    if record is None:
        raise JobNotFoundError(f"no job {job_id[:64]}", field="jobId")
    if record.status != "failed":
        raise JobNotRetryableError(f"job {job_id} is {record.status}; only a failed job can be run again")
    try:
        spec = record.spec()
        retry = runtime.jobs.retry_failed(record)
    except ValueError:
        raise JobNotRetryableError(
            f"job {job_id} never became a job (its S3 drop failed); drop the file again"
        ) from None
    except JobExistsError:
        raise JobNotRetryableError(f"job {job_id} is being run again already") from None
    runtime.job_queue.send(JobMessage(jobId=job_id, spec=spec, retry=retry))
    logger.info("job queued again", extra={"jobId": job_id, "retry": retry})
    return json_response(HTTPStatus.ACCEPTED, JobAccepted(jobId=job_id, statusUrl=status_url(job_id)))


@app.get("/attachments/jobs/<job_id>")
@tracer.capture_method(capture_response=False, capture_error=False)
def get_job(job_id: str) -> dict[str, Any]:
    authorize()
    record = get_runtime().jobs.get(job_id) if job_id.isalnum() and len(job_id) <= 64 else None
    if record is None:
        raise JobNotFoundError(f"no job {job_id[:64]}", field="jobId")
    return record.public_view()


@app.get("/attachments/jobs")
@tracer.capture_method(capture_response=False, capture_error=False)
def list_jobs() -> Response[str]:
    authorize()
    query = parse_job_query(app.current_event.query_string_parameters, get_runtime().workspace_id)
    records, position = get_runtime().jobs.find(query)
    cursor = encode_cursor(position) if position else None
    return json_response(HTTPStatus.OK, JobList(jobs=[r.view() for r in records], nextCursor=cursor))


@app.exception_handler(AttachError)
def on_attach_error(error: AttachError) -> Response[str]:
    status = next((s for cls, s in HTTP_STATUS.items() if isinstance(error, cls)), None)
    if status is not None:
        logger.info("request refused", extra={"status": int(status), "code": error.code, "field": error.field})
        return error_response(status, error.code, error.message, error.field)
    logger.exception("request could not be served", extra={"code": error.code})
    if error.retryable:  # nothing was accepted; the caller may send the same request again
        unavailable = UnavailableError.code
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, unavailable, "try again shortly: " + error.message)
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, error.code, "the service is misconfigured; see its logs")


@app.exception_handler(IdempotencyPersistenceLayerError)
def on_idempotency_store_error(error: IdempotencyPersistenceLayerError) -> Response[str]:
    logger.exception("the idempotency store failed")
    return error_response(
        HTTPStatus.SERVICE_UNAVAILABLE, UnavailableError.code, "try again shortly: the job store failed"
    )


@app.exception_handler(Exception)
def on_unexpected_error(error: Exception) -> Response[str]:
    logger.exception("unexpected error")
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, InternalError.code, "unexpected error; see the service's logs"
    )


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return error_response(
        HTTPStatus.NOT_FOUND,
        RouteNotFoundError.code,
        "There is no such route: use POST /attachments, GET /attachments/jobs or GET /attachments/jobs/{jobId}.",
    )


# log_event stays off whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event carries the Authorization header.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # An in-progress idempotency record of an invocation that times out expires with it.
    get_runtime().idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
