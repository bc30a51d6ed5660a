"""The one ``requests.Session`` the engine talks to Atlassian through: pooled, with timeouts and retries, and
the one caller of ``requests`` (:func:`send`), which translates every failure and reply into the package's errors.

urllib3's ``Retry`` handles what is safe to repeat inside one call: connection failures, and 429/5xx on
GET (credentials, attachment list, workspace). POSTs are never repeated here: a streamed upload cannot
be replayed and a link must not happen twice; the caller decides (the worker re-queues the job).
The chunked media calls, whose bodies can be sent again and whose effects are idempotent (content-addressed chunks,
appends at an offset), get a session of their own with ``media_retry``: every method, as the web client retries.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Mapping
from contextlib import closing
from types import TracebackType
from typing import Any, Literal, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from .. import __version__
from ..errors import AtlassianAuthError, AtlassianError, Step

CONNECT_TIMEOUT = 10.0
API_READ_TIMEOUT = 60.0
# After the last byte of a large upload the media service may take a while to answer.
UPLOAD_READ_TIMEOUT = 300.0
# A Retry-After longer than this is not slept through inside an invocation; the error carries it instead.
MAX_INLINE_WAIT_SECONDS = 5.0
# A 429 without Retry-After: back off from a few seconds with jitter (x0.7-1.3), never at once (Atlassian's "Rate
# limiting" guidance for Jira Cloud, ATLASSIAN_FACTS.md).
RATE_LIMIT_FIRST_WAIT_SECONDS = 2.0
USER_AGENT = f"assets-attach/{__version__}"
_URL_QUERY = re.compile(r"\?[^\s'\"()]*")


class QuerylessErrorsAdapter(HTTPAdapter):
    """An adapter whose errors do not quote a URL's query. requests' exception text names the URL, and a media
    download URL's query is a signed token: X-Ray's requests patch records that text in the trace (``cause``),
    and logs may show it. The query is cut from the message here, below every caller and every patch."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().send(request, *args, **kwargs)
        except requests.RequestException as e:
            text = str(e)
            safe = _URL_QUERY.sub("?<query removed>", text)
            if safe == text:
                raise
            raise type(e)(safe, request=e.request, response=e.response) from None


class BoundedRetry(Retry):
    """urllib3 Retry that waits out a short Retry-After but hands a long one back to the caller."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is not None and wait > MAX_INLINE_WAIT_SECONDS and _pool is not None:
            raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:.0f}s is too long to wait inline"))
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_backoff_time(self) -> float:
        """urllib3's exponential back-off, except after a 429 (that had no Retry-After): from a few seconds."""
        if self.history and self.history[-1].status == 429:
            rate_limited = sum(1 for entry in self.history if entry.status == 429)
            wait: float = min(RATE_LIMIT_FIRST_WAIT_SECONDS * 2.0 ** (rate_limited - 1), MAX_INLINE_WAIT_SECONDS)
            return wait * random.uniform(0.7, 1.3)  # noqa: S311 - jitter, not cryptography
        return float(super().get_backoff_time())


MEDIA_TRIES = 5  # Atlassian's media client: up to 5 tries on network errors and 5xx, 1 s then doubling, not on 429


def media_retry(first_wait: float = 1.0) -> Retry:
    """The chunked media calls' retries (MEDIA_CHUNKED.md, "Retries"): any method, network errors and 5xx, up to 5
    tries; urllib3 tries again at once, then after ``first_wait`` seconds, doubling (0, 1, 2, 4 s)."""
    retries = MEDIA_TRIES - 1
    return BoundedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=first_wait / 2,  # urllib3 waits backoff_factor * 2**(n-1) before try n+1, from n = 2
        backoff_max=8 * first_wait,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=None,
        # Not on 429 even with a Retry-After (urllib3 would); a long Retry-After on a 5xx reaches the job's back-off.
        respect_retry_after_header=False,
        raise_on_status=False,
    )


def environment_settings(url: str) -> dict[str, Any]:
    """What ``requests`` reads from the environment for calls to ``url`` (proxies and NO_PROXY, the CA bundle), read
    once by ``requests`` itself. A session with ``trust_env`` off, given these with each call, no longer scans the
    environment on every request (about 4 ms of CPU each, a second per GiB of 5 MiB chunks) nor looks for a
    ``.netrc``, whose Basic credentials would replace the media call's Bearer token."""
    with requests.Session() as reader:
        return dict(reader.merge_environment_settings(url, {}, None, None, None))


def new_session(connections: int = 4, retry: Retry | None = None, *, trust_env: bool = True) -> requests.Session:
    """``connections``: kept open per host (a chunked upload uses one per chunk in flight, plus its appends).
    ``retry``: what urllib3 repeats inside one call; by default connection failures, and 429/5xx on GET.
    ``trust_env`` False: the caller passes ``environment_settings`` with each call."""
    retry = retry or BoundedRetry(
        total=3,
        connect=3,
        read=0,
        status=2,
        backoff_factor=0.5,
        backoff_max=MAX_INLINE_WAIT_SECONDS,
        backoff_jitter=0.25,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.trust_env = trust_env
    adapter = QuerylessErrorsAdapter(max_retries=retry, pool_connections=4, pool_maxsize=connections)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    return session


# -- replies ------------------------------------------------------------------------------------------


def error_detail(response: requests.Response) -> str:
    """A short, secret-free description of an error reply."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict):
        # Assets' attachment endpoints answer {"errorMessage": "TCS 404"}, Jira {"errorMessages": [...]}, the
        # gateway {"message": ...} (ATLASSIAN_FACTS.md, "Assets (JSM) REST"): every form is read.
        messages = (
            body.get("errorMessages") or body.get("errorMessage") or body.get("message") or body.get("error") or ""
        )
        if isinstance(messages, list):
            messages = "; ".join(str(m) for m in messages)
        return str(messages)[:300]
    return ""


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def raise_for_reply(response: requests.Response, step: Step) -> None:
    """Turn a non-2xx reply into the matching error; 429 and 5xx are retryable."""
    status = response.status_code
    if status < 300:
        return
    detail = error_detail(response)
    kwargs: dict[str, Any] = {"step": step, "status": status, "retry_after": retry_after_seconds(response)}
    if status in (401, 403):
        raise AtlassianAuthError(
            f"Atlassian refused the credentials{': ' + detail if detail else ''}", retryable=False, **kwargs
        )
    raise AtlassianError(
        f"Atlassian answered {status}{': ' + detail if detail else ''}",
        retryable=status == 429 or status >= 500,
        **kwargs,
    )


REDIRECTS = frozenset({301, 302, 303, 307, 308})
ReadTimeout = Literal["api", "upload"]
_READ_TIMEOUTS: dict[ReadTimeout, float] = {"api": API_READ_TIMEOUT, "upload": UPLOAD_READ_TIMEOUT}


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    step: Step,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    data: Any = None,
    json: Any = None,
    auth: tuple[str, str] | None = None,
    stream: bool = False,
    read_timeout: ReadTimeout = "api",
    environment: Mapping[str, Any] | None = None,
    passes: Collection[int] = (),
    refusal: Callable[[requests.Response], AtlassianError | None] | None = None,
) -> requests.Response:
    """One call to Atlassian: the only place the package calls Atlassian through ``requests`` (``stack_api`` is the
    door to the deployed stack's own API).

    Redirects are never followed (credentials stay with ``url``'s host; a caller that follows one vets where it
    goes and calls again). ``auth``: Basic credentials, passed per request so they never reach another host.
    ``read_timeout``: "upload" waits longer for the reply to a large body. ``environment``: ``environment_settings``
    for a session with ``trust_env`` off. ``stream``: the caller reads the body and closes the response.

    A network error is a retryable AtlassianError; a reply neither 2xx nor in ``passes`` is closed and raised as
    ``refusal`` reads it (a caller's own rule: the media token's expiry), else as ``raise_for_reply`` does."""
    try:
        response = session.request(
            method,
            url,
            headers=headers,
            params=params,
            data=data,
            json=json,
            auth=auth,
            timeout=(CONNECT_TIMEOUT, _READ_TIMEOUTS[read_timeout]),
            allow_redirects=False,
            **{**(environment or {}), "stream": stream},
        )
    except requests.RequestException as e:
        raise AtlassianError(f"cannot reach Atlassian ({type(e).__name__})", step=step, retryable=True) from e
    if response.status_code >= 300 and response.status_code not in passes:
        with closing(response):
            refused = refusal(response) if refusal is not None else None
            if refused is not None:
                raise refused
            raise_for_reply(response, step)
    return response


def reply_json(response: requests.Response, step: Step) -> Any:
    try:
        return response.json()
    except ValueError:
        raise AtlassianError("Atlassian answered with no JSON", step=step, retryable=True) from None
