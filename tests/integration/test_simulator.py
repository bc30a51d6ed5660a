"""The Atlassian simulator, exercised over real HTTP with ``requests``."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from devstack.atlassian_sim import STEPS, AtlassianSimulator, Fault

OBJ = "1234"
OTHER = "5678"
BOUNDARY = "sim-test-boundary-7f3a"


@pytest.fixture
def sim() -> Iterator[AtlassianSimulator]:
    with AtlassianSimulator() as simulator:
        simulator.add_object(OBJ, "HW-42", "Laptop 42")
        simulator.add_object(OTHER, "HW-43")
        yield simulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


# --------------------------------------------------------------------------------------------- helpers


def assets_url(sim: AtlassianSimulator, suffix: str) -> str:
    return f"{sim.base_url}/jsm/assets/workspace/{sim.workspace_id}/v1/{suffix}"


def basic(sim: AtlassianSimulator) -> tuple[str, str]:
    return (sim.email, sim.api_token)


def credentials(http: requests.Session, sim: AtlassianSimulator, obj: str = OBJ) -> dict[str, Any]:
    response = http.get(assets_url(sim, f"attachments/object/{obj}/credentials"), auth=basic(sim), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def multipart(
    content: bytes,
    *,
    filename: str = "report.pdf",
    part_name: str = "file",
    content_type: str = "application/pdf",
    extra_disposition: str = "",
    second_part: bool = False,
    boundary: str = BOUNDARY,
) -> bytes:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{part_name}"; filename="{filename}"{extra_disposition}\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    if second_part:
        tail = (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="comment"\r\n\r\nhello\r\n--{boundary}--\r\n'
        ).encode()
    return head + content + tail


def media_headers(creds: dict[str, Any], **extra: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {creds['mediaJwtToken']}",
        "X-Client-Id": creds["clientId"],
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    headers.update(extra)
    return headers


def upload(
    http: requests.Session,
    creds: dict[str, Any],
    content: bytes = b"hello assets",
    *,
    name: str = "report.pdf",
    body: Any = None,
    headers: dict[str, str] | None = None,
    path: str = "/file",
) -> requests.Response:
    return http.post(
        f"{creds['mediaBaseUrl']}{path}",
        params={"name": name},
        data=multipart(content) if body is None else body,
        headers=media_headers(creds) if headers is None else headers,
        timeout=30,
    )


def uploaded(http: requests.Session, sim: AtlassianSimulator, content: bytes, obj: str = OBJ) -> str:
    response = upload(http, credentials(http, sim, obj), content)
    assert response.status_code == 201, response.text
    media_id: str = response.json()["data"]["id"]
    return media_id


def attachment(media_id: str, size: int, **overrides: Any) -> dict[str, Any]:
    item = {
        "contentType": "application/pdf",
        "filename": "report.pdf",
        "mediaId": media_id,
        "size": size,
        "comment": "from S3",
    }
    item.update(overrides)
    return item


def link(
    http: requests.Session, sim: AtlassianSimulator, items: list[dict[str, Any]], obj: str = OBJ
) -> requests.Response:
    return http.post(
        assets_url(sim, f"attachments/object/{obj}"), json={"attachments": items}, auth=basic(sim), timeout=10
    )


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def raw_exchange(sim: AtlassianSimulator, head: str, body: bytes = b"") -> bytes:
    """Send one request on a fresh socket and read until the server closes it."""
    with socket.create_connection((sim.host, sim.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------- credentials


def test_credentials_issue_a_fresh_signed_jwt_each_call(http: requests.Session, sim: AtlassianSimulator) -> None:
    first, second = credentials(http, sim), credentials(http, sim)
    assert first["mediaBaseUrl"] == sim.media_base_url == f"{sim.base_url}/media"
    assert first["clientId"] == second["clientId"]
    assert first["mediaJwtToken"] != second["mediaJwtToken"]
    header_b64 = first["mediaJwtToken"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt_claims(first["mediaJwtToken"])
    assert claims["objectId"] == OBJ
    assert claims["clientId"] == first["clientId"]
    assert claims["exp"] - claims["iat"] == 900


def test_credentials_unknown_workspace_or_object_is_404_with_a_singular_error_message(
    http: requests.Session, sim: AtlassianSimulator
) -> None:
    """ATLASSIAN_FACTS.md, "Assets (JSM) REST": the attachment endpoints answer {"errorMessage": "TCS 404"}."""
    url = f"{sim.base_url}/jsm/assets/workspace/nope/v1/attachments/object/{OBJ}/credentials"
    response = http.get(url, auth=basic(sim), timeout=10)
    assert response.status_code == 404
    assert "workspace not found" in response.json()["errorMessage"]
    response = http.get(assets_url(sim, "attachments/object/999/credentials"), auth=basic(sim), timeout=10)
    assert response.status_code == 404
    assert response.json() == {"errorMessage": "TCS 404: no object found with id 999"}


ASSETS_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "attachments/object/1234/credentials", None),
    ("POST", "attachments/object/1234", {"attachments": []}),
    ("GET", "attachments/object/1234", None),
    ("POST", "object/aql", {"qlQuery": 'Key = "HW-42"'}),
    ("GET", "/rest/servicedeskapi/assets/workspace", None),
]


@pytest.mark.parametrize(("method", "suffix", "payload"), ASSETS_CALLS)
def test_basic_auth_is_enforced_on_every_assets_call(
    http: requests.Session, sim: AtlassianSimulator, method: str, suffix: str, payload: Any
) -> None:
    url = sim.base_url + suffix if suffix.startswith("/") else assets_url(sim, suffix)
    for auth in (None, (sim.email, "wrong-token"), ("someone@example.com", sim.api_token)):
        response = http.request(method, url, json=payload, auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
    bearer = {"Authorization": f"Bearer {credentials(http, sim)['mediaJwtToken']}"}
    assert http.request(method, url, json=payload, headers=bearer, timeout=10).status_code == 401


def test_api_token_rotation(http: requests.Session, sim: AtlassianSimulator) -> None:
    url = assets_url(sim, f"attachments/object/{OBJ}")
    old = basic(sim)
    sim.set_api_token("rotated-token")
    assert http.get(url, auth=old, timeout=10).status_code == 401
    assert http.get(url, auth=(sim.email, "rotated-token"), timeout=10).status_code == 200


# --------------------------------------------------------------------------------------------- media upload


def test_upload_happy_path_is_recorded(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    content = os.urandom(3000)
    response = upload(http, creds, content, name="report.pdf")
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["name"] == "report.pdf"
    assert data["size"] == len(content)
    assert data["mimeType"] == "application/pdf"
    assert data["processingStatus"] == "pending"
    assert data["artifacts"] == {} and data["representations"] == {}
    record = sim.uploads[data["id"]]
    assert record.object_id == OBJ
    assert record.name == "report.pdf"
    assert record.part_filename == "report.pdf"
    assert record.part_filename_star is None
    assert record.content_type == "application/pdf"
    assert record.size == len(content)
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert record.headers["X-Client-Id"] == creds["clientId"]
    assert "Authorization" not in record.headers
    seen = sim.requests[-1]
    assert (seen.method, seen.path, seen.query, seen.status) == ("POST", "/media/file", {"name": "report.pdf"}, 201)
    assert seen.headers["Authorization"] == "Bearer"
    assert sim.requests[0].headers["Authorization"] == "Basic"


def test_upload_requires_bearer_and_matching_client_id(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    no_auth = media_headers(creds)
    del no_auth["Authorization"]
    assert upload(http, creds, headers=no_auth).status_code == 401
    wrong_client = upload(http, creds, headers=media_headers(creds, **{"X-Client-Id": "someone-else"}))
    assert wrong_client.status_code == 403
    with AtlassianSimulator() as other:
        other.add_object(OBJ)
        foreign = credentials(http, other)
    forged = media_headers(creds, Authorization=f"Bearer {foreign['mediaJwtToken']}")
    assert upload(http, creds, headers=forged).status_code == 401
    assert upload(http, creds, headers=media_headers(creds, Authorization="Bearer not.a.jwt")).status_code == 401
    assert upload(http, creds).status_code == 201


def test_expired_tokens_are_rejected(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    sim.expire_tokens()
    response = upload(http, creds)
    assert response.status_code == 401
    assert "expired" in response.json()["errorMessages"][0]
    assert upload(http, credentials(http, sim)).status_code == 201  # a fresh token works again
    with AtlassianSimulator(jwt_ttl_seconds=0) as short:
        short.add_object(OBJ)
        response = upload(http, credentials(http, short))
        assert response.status_code == 401
        assert "expired" in response.json()["errorMessages"][0]


def test_upload_header_checks(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    no_name = http.post(f"{creds['mediaBaseUrl']}/file", data=multipart(b"x"), headers=media_headers(creds), timeout=10)
    assert no_name.status_code == 400
    json_body = upload(http, creds, headers=media_headers(creds, **{"Content-Type": "application/json"}))
    assert json_body.status_code == 415
    no_boundary = upload(http, creds, headers=media_headers(creds, **{"Content-Type": "multipart/form-data"}))
    assert no_boundary.status_code == 400
    assert upload(http, creds).status_code == 201  # the same session (connection) still works
    assert len(sim.uploads) == 1


def test_chunked_upload_is_refused(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    body = multipart(b"x" * 100_000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = upload(http, creds, body=chunks())
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 411
    assert response.headers["Connection"] == "close"
    assert upload(http, creds).status_code == 201
    assert [u.size for u in sim.uploads.values()] == [len(b"hello assets")]


def test_upload_without_content_length_is_411(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    head = (
        f"POST /media/file?name=a.txt HTTP/1.1\r\nHost: {sim.host}\r\n"
        f"Authorization: Bearer {creds['mediaJwtToken']}\r\nX-Client-Id: {creds['clientId']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    )
    answer = raw_exchange(sim, head)
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert b"Content-Length: " in answer


def test_expect_100_continue_is_answered_after_the_header_checks(sim: AtlassianSimulator) -> None:
    with requests.Session() as http:
        creds = credentials(http, sim)
    body = multipart(b"abc")
    head = (
        f"POST /media/file?name=a.txt HTTP/1.1\r\nHost: {sim.host}\r\n"
        f"Authorization: Bearer {{token}}\r\nX-Client-Id: {creds['clientId']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    # Rejected: the final answer comes at once, without "100 Continue" and without the body being sent.
    assert raw_exchange(sim, head.format(token="bad")).startswith(b"HTTP/1.1 401 ")
    with socket.create_connection((sim.host, sim.port), timeout=10) as sock:
        sock.sendall(head.format(token=creds["mediaJwtToken"]).encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"second_part": True}, "Exactly one"),
        ({"part_name": "attachment"}, "named 'file'"),
    ],
)
def test_upload_needs_exactly_one_part_named_file(
    http: requests.Session, sim: AtlassianSimulator, kwargs: dict[str, Any], message: str
) -> None:
    creds = credentials(http, sim)
    response = upload(http, creds, body=multipart(b"payload", **kwargs))
    assert response.status_code == 400
    assert message in response.json()["errorMessages"][0]
    assert not sim.uploads
    assert upload(http, creds).status_code == 201  # the body was drained: the connection is still usable


def test_malformed_multipart_bodies(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    truncated = multipart(b"payload")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
    no_filename = multipart(b"x").replace(b'; filename="report.pdf"', b"")
    for body in (truncated, no_filename, b"no boundary at all", f"--{BOUNDARY}--\r\n".encode()):
        assert upload(http, creds, body=body).status_code == 400
    assert not sim.uploads


def test_preamble_epilogue_and_near_miss_delimiters(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    near_miss = f"\r\n--{BOUNDARY}"[:-1].encode() + b"Z"
    content = near_miss * (3 * (1 << 20) // len(near_miss))  # near misses across every 1 MiB read edge
    body = b"preamble to ignore\r\n" + multipart(content) + b"epilogue to ignore"
    response = upload(http, creds, body=body)
    assert response.status_code == 201, response.text
    record = sim.uploads[response.json()["data"]["id"]]
    assert (record.size, record.sha256) == (len(content), hashlib.sha256(content).hexdigest())


def test_unicode_file_name_round_trips(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    name = "Prüfbericht 2026 — 検査 ✓.pdf"
    star = "UTF-8''Pr%C3%BCfbericht%202026%20%E2%80%94%20%E6%A4%9C%E6%9F%BB%20%E2%9C%93.pdf"
    body = multipart(b"%PDF", filename="Prufbericht 2026 -  .pdf", extra_disposition=f"; filename*={star}")
    response = upload(http, creds, name=name, body=body)
    assert response.status_code == 201
    assert response.json()["data"]["name"] == name
    assert sim.requests[-1].query == {"name": name}
    record = sim.uploads[response.json()["data"]["id"]]
    assert record.name == name
    assert record.part_filename == "Prufbericht 2026 -  .pdf"
    assert record.part_filename_star == star


def test_fifty_mib_upload_is_hashed_while_streaming(http: requests.Session, sim: AtlassianSimulator) -> None:
    content = os.urandom(50 << 20)
    media_id = uploaded(http, sim, content)
    record = sim.uploads[media_id]
    assert record.size == len(content)
    assert record.sha256 == hashlib.sha256(content).hexdigest()


def test_early_rejection_of_a_large_body_is_seen_as_the_status(http: requests.Session, sim: AtlassianSimulator) -> None:
    # The 401 is written before the 32 MiB body is read; the server then drains it (see _linger), so the
    # client, which writes the whole body before reading, sees the 401 rather than a reset connection.
    creds = credentials(http, sim)
    bad = media_headers(creds, Authorization="Bearer x.y.z")
    response = upload(http, creds, body=multipart(b"\0" * (32 << 20)), headers=bad)
    assert response.status_code == 401
    assert response.headers["Connection"] == "close"
    assert upload(http, creds).status_code == 201


def test_alternate_upload_path(http: requests.Session) -> None:
    with AtlassianSimulator(upload_path="/file/binary") as sim:
        sim.add_object(OBJ)
        creds = credentials(http, sim)
        assert upload(http, creds, path="/file").status_code == 404
        assert upload(http, creds, path="/file/binary").status_code == 201
    with AtlassianSimulator() as sim:
        sim.add_object(OBJ)
        assert upload(http, credentials(http, sim), path="/file/binary").status_code == 404


# --------------------------------------------------------------------------------------------- link & list


def test_link_and_list(http: requests.Session, sim: AtlassianSimulator) -> None:
    content = b"x" * 1_300_000
    first = uploaded(http, sim, content)
    second = uploaded(http, sim, b"tiny")
    response = link(http, sim, [attachment(first, len(content), comment="a <b>")])
    assert response.status_code == 201
    [bean] = response.json()
    assert bean["id"] == 1
    assert bean["author"] == "Bot"
    assert bean["mimeType"] == "application/pdf"
    assert bean["filename"] == "report.pdf"
    assert bean["filesize"] == "1.2 MB"
    assert bean["comment"] == "a <b>" and bean["commentOutput"] == "a &lt;b&gt;"
    assert bean["url"] == assets_url(sim, "attachments/1/download")
    assert bean["created"].endswith("Z")
    assert link(http, sim, [attachment(second, 4, filename="t.txt")]).json()[0]["id"] == 2
    listed = http.get(assets_url(sim, f"attachments/object/{OBJ}"), auth=basic(sim), timeout=10)
    assert listed.status_code == 200
    assert [(b["id"], b["filename"], b["filesize"]) for b in listed.json()] == [
        (1, "report.pdf", "1.2 MB"),
        (2, "t.txt", "4 B"),
    ]
    stored = sim.attachments(OBJ)
    assert [(a.id, a.media_id, a.size) for a in stored] == [(1, first, len(content)), (2, second, 4)]
    assert stored[0].sha256 == hashlib.sha256(content).hexdigest()
    assert sim.attachments(OTHER) == []
    missing = http.get(assets_url(sim, "attachments/object/999"), auth=basic(sim), timeout=10)
    assert missing.status_code == 404


def test_link_rejections(http: requests.Session, sim: AtlassianSimulator) -> None:
    media_id = uploaded(http, sim, b"12345")
    foreign = uploaded(http, sim, b"12345", obj=OTHER)
    assert link(http, sim, [attachment(foreign, 5)]).status_code == 400
    assert link(http, sim, [attachment(media_id, 6)]).status_code == 400
    assert link(http, sim, [attachment("00000000-0000-4000-8000-000000000000", 5)]).status_code == 400
    assert link(http, sim, [attachment(media_id, 5), attachment(media_id, 5)]).status_code == 400
    assert link(http, sim, [attachment(media_id, 5)]).status_code == 201
    reused = link(http, sim, [attachment(media_id, 5)])
    assert reused.status_code == 400
    assert "already" in reused.json()["errorMessage"]
    assert len(sim.attachments(OBJ)) == 1


@pytest.mark.parametrize("field", ["contentType", "filename", "mediaId", "size", "comment"])
def test_link_fields_are_required_and_typed(http: requests.Session, sim: AtlassianSimulator, field: str) -> None:
    media_id = uploaded(http, sim, b"abc")
    item = attachment(media_id, 3)
    del item[field]
    missing = link(http, sim, [item])
    assert missing.status_code == 400
    assert field in missing.json()["errorMessage"]
    item = attachment(media_id, 3)
    item[field] = "3" if field == "size" else 3
    wrong = link(http, sim, [item])
    assert wrong.status_code == 400
    assert field in wrong.json()["errorMessage"]


def test_link_needs_a_json_body(http: requests.Session, sim: AtlassianSimulator) -> None:
    url = assets_url(sim, f"attachments/object/{OBJ}")
    text = http.post(url, data="attachments", headers={"Content-Type": "text/plain"}, auth=basic(sim), timeout=10)
    assert text.status_code == 415
    bad = http.post(url, data="{nope", headers={"Content-Type": "application/json"}, auth=basic(sim), timeout=10)
    assert bad.status_code == 400
    assert http.post(url, json={"attachments": []}, auth=basic(sim), timeout=10).status_code == 400


# --------------------------------------------------------------------------------------------- AQL, discovery


@pytest.mark.parametrize("query", ['Key = "HW-42"', "Key = HW-42", 'objectKey = "HW-42"', 'KEY="hw-42"'])
def test_aql_resolves_a_key(http: requests.Session, sim: AtlassianSimulator, query: str) -> None:
    response = http.post(
        assets_url(sim, "object/aql"),
        params={"startAt": 0, "maxResults": 25},
        json={"qlQuery": query},
        auth=basic(sim),
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["startAt"], body["maxResults"], body["total"], body["isLast"]) == (0, 25, 1, True)
    [value] = body["values"]
    assert value["id"] == OBJ and value["objectKey"] == "HW-42" and value["label"] == "Laptop 42"
    assert value["globalId"] == f"{sim.workspace_id}:{OBJ}"


def test_aql_unknown_key_and_unsupported_query(http: requests.Session, sim: AtlassianSimulator) -> None:
    url = assets_url(sim, "object/aql")
    none = http.post(url, json={"qlQuery": 'Key = "HW-1"'}, auth=basic(sim), timeout=10)
    assert none.json()["total"] == 0 and none.json()["values"] == []
    bad = http.post(url, json={"qlQuery": 'Name like "x"'}, auth=basic(sim), timeout=10)
    assert bad.status_code == 400
    assert bad.json()["errorMessages"]


def test_workspace_discovery_and_unknown_routes(http: requests.Session, sim: AtlassianSimulator) -> None:
    response = http.get(f"{sim.base_url}/rest/servicedeskapi/assets/workspace", auth=basic(sim), timeout=10)
    assert response.json() == {
        "size": 1,
        "start": 0,
        "limit": 50,
        "isLastPage": True,
        "values": [{"workspaceId": sim.workspace_id}],
    }
    unknown = http.get(f"{sim.base_url}/nothing/here", timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["errorMessages"]


def test_keep_alive_reuses_one_connection(http: requests.Session, sim: AtlassianSimulator) -> None:
    for _ in range(5):
        credentials(http, sim)
    assert upload(http, credentials(http, sim)).status_code == 201
    assert sim.connections_accepted == 1


# --------------------------------------------------------------------------------------------- faults


def test_status_faults_with_retry_after_in_fifo_order(http: requests.Session, sim: AtlassianSimulator) -> None:
    sim.inject("credentials", Fault(status=429, retry_after=2, times=2))
    sim.inject("credentials", Fault(status=503, retry_after=1.5))
    url = assets_url(sim, f"attachments/object/{OBJ}/credentials")
    answers = [http.get(url, auth=basic(sim), timeout=10) for _ in range(4)]
    assert [(r.status_code, r.headers.get("Retry-After")) for r in answers] == [
        (429, "2"),
        (429, "2"),
        (503, "1.5"),
        (200, None),
    ]
    assert answers[0].json()["errorMessage"]
    assert [r.status for r in sim.requests] == [429, 429, 503, 200]


def test_upload_status_fault(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    sim.inject("upload", Fault(status=500))
    assert upload(http, creds, b"x" * (2 << 20)).status_code == 500
    assert not sim.uploads
    assert upload(http, creds).status_code == 201


def test_delay_fault(http: requests.Session, sim: AtlassianSimulator) -> None:
    sim.inject("aql", Fault(delay_seconds=0.4))
    started = time.monotonic()
    response = http.post(assets_url(sim, "object/aql"), json={"qlQuery": "Key = HW-42"}, auth=basic(sim), timeout=10)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4
    sim.inject("list", Fault(delay_seconds=1))
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(assets_url(sim, f"attachments/object/{OBJ}"), auth=basic(sim), timeout=(5, 0.2))


def test_drop_mid_body_fault(http: requests.Session, sim: AtlassianSimulator) -> None:
    creds = credentials(http, sim)
    sim.inject("upload", Fault(drop_after_bytes=1 << 20))
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(http, creds, b"y" * (8 << 20))
    assert not sim.uploads
    assert sim.requests[-1].status is None
    assert upload(http, creds).status_code == 201


def test_link_after_success_fault_creates_the_attachment(http: requests.Session, sim: AtlassianSimulator) -> None:
    media_id = uploaded(http, sim, b"abcdef")
    sim.inject("link", Fault(status=502, after_success=True))
    lost = link(http, sim, [attachment(media_id, 6)])
    assert lost.status_code == 502
    assert [a.media_id for a in sim.attachments(OBJ)] == [media_id]
    assert link(http, sim, [attachment(media_id, 6)]).status_code == 400  # a retry finds it already linked
    second = uploaded(http, sim, b"ghi")
    sim.inject("link", Fault(drop_after_bytes=0, after_success=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        link(http, sim, [attachment(second, 3)])
    assert [a.media_id for a in sim.attachments(OBJ)] == [media_id, second]


def test_inject_validates_its_arguments(sim: AtlassianSimulator) -> None:
    with pytest.raises(ValueError, match="unknown step"):
        sim.inject("download", Fault(status=500))
    with pytest.raises(ValueError, match="link"):
        sim.inject("upload", Fault(status=500, after_success=True))


# --------------------------------------------------------------------------------------------- Jira attachments

ISSUE = "HW-7"


@pytest.fixture
def jira(sim: AtlassianSimulator) -> dict[str, bytes]:
    """Two attachments on ISSUE, by id: a PDF of 300 kB with a Unicode name, and a small PNG."""
    pdf = os.urandom(300_000)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(500)
    sim.add_issue(ISSUE)
    return {
        sim.add_jira_attachment(ISSUE, "Prüfbericht 2026.pdf", pdf, "application/pdf"): pdf,
        sim.add_jira_attachment(ISSUE, "photo.png", png, "image/png"): png,
    }


def jira_url(sim: AtlassianSimulator, suffix: str) -> str:
    return f"{sim.base_url}/rest/api/3/{suffix}"


def redirect_location(http: requests.Session, sim: AtlassianSimulator, attachment_id: str) -> str:
    response = http.get(
        jira_url(sim, f"attachment/content/{attachment_id}"), auth=basic(sim), allow_redirects=False, timeout=10
    )
    assert response.status_code == 303, response.text
    location: str = response.headers["Location"]
    return location


def raw_get(url: str) -> tuple[bytes, bytes]:
    """GET url on a fresh socket, read until the server closes it: (status line and headers, body)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    head = f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode())
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                chunks.append(data)
    answer = b"".join(chunks)
    header, _, body = answer.partition(b"\r\n\r\n")
    return header, body


def test_jira_control_methods(sim: AtlassianSimulator) -> None:
    sim.add_issue("HW-1")
    sim.add_issue("HW-1")  # again: nothing changes
    first = sim.add_jira_attachment("HW-1", "a.txt", b"abc", "text/plain")
    second = sim.add_jira_attachment("HW-2", "b.bin", b"")  # a new issue is added on the way
    assert (first, second) == ("10000", "10001")
    [stored] = sim.jira_attachments("HW-1")
    assert (stored.id, stored.issue_key, stored.filename, stored.mime_type, stored.size) == (
        "10000",
        "HW-1",
        "a.txt",
        "text/plain",
        3,
    )
    assert stored.sha256 == hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.size = 4  # type: ignore[misc]
    assert [a.mime_type for a in sim.jira_attachments("HW-2")] == ["application/octet-stream"]
    sim.delete_jira_attachment(first)
    assert sim.jira_attachments("HW-1") == []
    with pytest.raises(KeyError):
        sim.delete_jira_attachment(first)
    for key in ("hw-1", "HW", "HW-0", "HW 1"):
        with pytest.raises(ValueError, match="issue key"):
            sim.add_issue(key)


def test_jira_attachment_metadata(http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]) -> None:
    pdf_id, png_id = jira
    url = jira_url(sim, f"attachment/{pdf_id}")
    for auth in (None, (sim.email, "wrong-token"), ("someone@example.com", sim.api_token)):
        response = http.get(url, auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
    response = http.get(url, auth=basic(sim), timeout=10)
    assert response.status_code == 200
    meta = response.json()
    assert meta["self"] == url
    assert meta["id"] == int(pdf_id) == 10000  # a number, as Jira's AttachmentMetadata has it
    assert meta["filename"] == "Prüfbericht 2026.pdf"
    assert meta["size"] == 300_000
    assert meta["mimeType"] == "application/pdf"
    assert meta["content"] == jira_url(sim, f"attachment/content/{pdf_id}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", meta["created"])
    assert meta["author"]["displayName"] and meta["author"]["accountId"]
    assert meta["mediaApiFileId"] == sim.jira_attachments(ISSUE)[0].media_file_id
    assert "thumbnail" not in meta
    png = http.get(jira_url(sim, f"attachment/{png_id}"), auth=basic(sim), timeout=10).json()
    assert png["thumbnail"] == jira_url(sim, f"attachment/thumbnail/{png_id}")


def test_jira_issue_lists_its_attachments(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id, png_id = jira
    sim.add_issue("HW-8")
    url = jira_url(sim, f"issue/{ISSUE}")
    assert http.get(url, params={"fields": "attachment"}, timeout=10).status_code == 401
    response = http.get(url, params={"fields": "attachment"}, auth=basic(sim), timeout=10)
    assert response.status_code == 200
    issue = response.json()
    assert (issue["id"], issue["key"]) == ("10000", ISSUE)
    assert issue["self"] == jira_url(sim, "issue/10000")
    listed = issue["fields"]["attachment"]
    assert [(a["id"], a["filename"], a["size"], a["mimeType"]) for a in listed] == [
        (pdf_id, "Prüfbericht 2026.pdf", 300_000, "application/pdf"),
        (png_id, "photo.png", len(jira[png_id]), "image/png"),
    ]
    assert listed[0]["content"] == jira_url(sim, f"attachment/content/{pdf_id}")
    for other in ("10000", ISSUE.lower()):  # by id, or by a key in lower case
        same = http.get(jira_url(sim, f"issue/{other}"), params={"fields": "attachment"}, auth=basic(sim), timeout=10)
        assert same.json() == issue
    without = http.get(url, params={"fields": "summary,-attachment"}, auth=basic(sim), timeout=10)
    assert without.json()["fields"] == {}
    empty = http.get(jira_url(sim, "issue/HW-8"), params={"fields": "attachment"}, auth=basic(sim), timeout=10)
    assert empty.json()["fields"] == {"attachment": []}
    missing = http.get(jira_url(sim, "issue/HW-99"), params={"fields": "attachment"}, auth=basic(sim), timeout=10)
    assert missing.status_code == 404
    assert missing.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]


@pytest.mark.parametrize(
    "suffix", ["attachment/99999", "attachment/content/99999", "attachment/content/99999?redirect=false"]
)
def test_unknown_jira_attachment_is_404(http: requests.Session, sim: AtlassianSimulator, suffix: str) -> None:
    response = http.get(jira_url(sim, suffix), auth=basic(sim), allow_redirects=False, timeout=10)
    assert response.status_code == 404
    assert response.json()["errorMessages"] == ["The attachment with id '99999' does not exist"]


def test_content_without_redirect_streams_the_bytes(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    url = jira_url(sim, f"attachment/content/{pdf_id}")
    assert http.get(url, params={"redirect": "false"}, timeout=10).status_code == 401
    response = http.get(url, params={"redirect": "false"}, auth=basic(sim), timeout=10)
    assert response.status_code == 200
    assert response.history == []
    assert response.content == jira[pdf_id]
    assert response.headers["Content-Length"] == "300000"
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Disposition"].endswith("filename*=UTF-8''Pr%C3%BCfbericht%202026.pdf")
    seen = sim.requests[-1]
    assert (seen.path, seen.query, seen.status) == (
        f"/rest/api/3/attachment/content/{pdf_id}",
        {"redirect": "false"},
        200,
    )
    assert seen.headers["Authorization"] == "Basic"


def test_content_redirects_to_another_host_with_a_token(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    assert http.get(jira_url(sim, f"attachment/content/{pdf_id}"), allow_redirects=False, timeout=10).status_code == 401
    location = redirect_location(http, sim, pdf_id)
    [stored, _] = sim.jira_attachments(ISSUE)
    parts = urlsplit(location)
    assert parts.hostname == sim.media_download_host != sim.host
    assert location.startswith(f"{sim.media_download_base_url}/file/{stored.media_file_id}/binary?")
    query = dict(parse_qsl(parts.query))
    assert set(query) == {"token", "client", "dl", "name"}
    assert (query["client"], query["dl"], query["name"]) == (sim.client_id, "true", "Prüfbericht 2026.pdf")
    claims = jwt_claims(query["token"])
    assert claims["access"] == {f"urn:filestore:file:{stored.media_file_id}": ["read"]}
    assert claims["exp"] - claims["iat"] == 60
    assert query["token"] in sim.issued_tokens  # for the scans that nothing leaked
    response = http.get(location, timeout=10)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stored.sha256
    assert response.headers["Content-Length"] == "300000"
    assert response.headers["Content-Type"] == "application/pdf"
    seen = sim.requests[-1]
    assert (seen.path, seen.status) == (f"/media/file/{stored.media_file_id}/binary", 200)
    assert seen.query == {**query, "token": "<redacted>"}
    assert seen.headers["Host"] == parts.netloc


def test_following_the_redirect_drops_the_basic_credentials(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    url = jira_url(sim, f"attachment/content/{pdf_id}")
    # requests strips Authorization on a redirect to another host name (Session.rebuild_auth).
    assert http.should_strip_auth(url, redirect_location(http, sim, pdf_id))
    response = http.get(url, auth=basic(sim), timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [303]
    assert response.content == jira[pdf_id]
    http.auth = basic(sim)  # credentials held by the session are not sent to the media host either
    assert http.get(url, timeout=10).content == jira[pdf_id]
    downloads = [r for r in sim.requests if r.path.startswith("/media/")]
    contents = [r for r in sim.requests if r.path.startswith("/rest/")]
    assert len(downloads) == 2 and all(r.status == 200 for r in downloads)
    assert all("Authorization" not in r.headers for r in downloads)
    assert all(r.headers["Authorization"] == "Basic" for r in contents)
    recorded = repr(sim.requests)
    secrets = [sim.api_token, base64.b64encode(f"{sim.email}:{sim.api_token}".encode()).decode(), *sim.issued_tokens]
    assert not [s for s in secrets if s in recorded]


def test_download_refuses_any_authorization_header(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    location = redirect_location(http, sim, pdf_id)
    forwarded = http.get(location, auth=basic(sim), timeout=10)  # a client that re-sends Basic to the media host
    assert forwarded.status_code == 401
    assert "Authorization" in forwarded.json()["errorMessages"][0]
    assert sim.requests[-1].headers["Authorization"] == "Basic"
    bearer = http.get(
        location, headers={"Authorization": f"Bearer {credentials(http, sim)['mediaJwtToken']}"}, timeout=10
    )
    assert bearer.status_code == 401
    assert sim.requests[-1].headers["Authorization"] == "Bearer"
    assert http.get(location, timeout=10).content == jira[pdf_id]  # the same URL without it works


def test_download_token_checks(http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]) -> None:
    pdf_id, png_id = jira
    location = redirect_location(http, sim, pdf_id)
    token = dict(parse_qsl(urlsplit(location).query))["token"]
    other_file = redirect_location(http, sim, png_id).split("?", 1)[0]

    def status(url: str) -> int:
        return http.get(url, timeout=10).status_code

    assert status(location.replace(f"token={token}&", "")) == 401
    assert status(location.replace(token, token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"))) == 401
    assert status(location.replace(f"client={sim.client_id}", "client=someone-else")) == 403
    assert status(other_file + "?" + location.split("?", 1)[1]) == 403  # a token for another file
    upload_jwt = credentials(http, sim)["mediaJwtToken"]
    assert status(location.replace(token, upload_jwt)) == 403  # signed by the simulator, but no read access
    assert status(location) == 200


def test_expired_download_tokens_are_refused(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    location = redirect_location(http, sim, pdf_id)
    sim.expire_download_tokens()
    response = http.get(location, timeout=10)
    assert response.status_code == 401
    assert "expired" in response.json()["errorMessages"][0]
    fresh = redirect_location(http, sim, pdf_id)  # a new redirect carries a new token
    assert http.get(fresh, timeout=10).content == jira[pdf_id]
    sim.expire_tokens()  # expires download tokens as well as upload JWTs
    assert http.get(fresh, timeout=10).status_code == 401
    sim.download_token_ttl_seconds = 0
    assert http.get(redirect_location(http, sim, pdf_id), timeout=10).status_code == 401


def test_deleted_attachment_is_gone_everywhere(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id, png_id = jira
    location = redirect_location(http, sim, pdf_id)
    sim.delete_jira_attachment(pdf_id)
    assert http.get(location, timeout=10).status_code == 404
    for suffix in (f"attachment/{pdf_id}", f"attachment/content/{pdf_id}"):
        assert http.get(jira_url(sim, suffix), auth=basic(sim), allow_redirects=False, timeout=10).status_code == 404
    issue = http.get(jira_url(sim, f"issue/{ISSUE}"), params={"fields": "attachment"}, auth=basic(sim), timeout=10)
    assert [a["id"] for a in issue.json()["fields"]["attachment"]] == [png_id]


def test_api_and_media_download_hosts_serve_their_own_routes(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    location = redirect_location(http, sim, pdf_id)
    on_api_host = location.replace(sim.media_download_base_url, sim.media_base_url)
    assert http.get(on_api_host, timeout=10).status_code == 404
    media_root = sim.media_download_base_url.removesuffix("/media")
    on_media_host = http.get(f"{media_root}/rest/api/3/attachment/{pdf_id}", auth=basic(sim), timeout=10)
    assert on_media_host.status_code == 404
    assert http.get(jira_url(sim, f"attachment/{pdf_id}"), auth=basic(sim), timeout=10).status_code == 200
    assert http.delete(jira_url(sim, f"attachment/{pdf_id}"), auth=basic(sim), timeout=10).status_code == 404


def test_media_download_host_can_be_named(http: requests.Session) -> None:
    with AtlassianSimulator() as default:
        # 127.0.0.2 where it can be bound (Linux: all of 127.0.0.0/8 is loopback), else localhost (macOS).
        assert default.media_download_host in ("127.0.0.2", "localhost")
        assert default.media_download_host != default.host
    named = AtlassianSimulator()
    named.media_download_host = "localhost"  # what start() falls back to where 127.0.0.2 cannot be bound
    with named:
        attachment_id = named.add_jira_attachment("HW-1", "a.bin", b"0123456789")
        location = redirect_location(http, named, attachment_id)
        assert urlsplit(location).hostname == "localhost"
        response = http.get(jira_url(named, f"attachment/content/{attachment_id}"), auth=basic(named), timeout=10)
        assert response.content == b"0123456789"
        assert "Authorization" not in named.requests[-1].headers


# --------------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("redirect", [True, False])
@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        ("bytes=1000-", 1000, 300_000),
        ("bytes=1000-1999", 1000, 2000),
        ("bytes=299999-", 299_999, 300_000),
        ("bytes=0-999999", 0, 300_000),  # an end past the file is cut to it
        ("bytes=-500", 299_500, 300_000),
    ],
)
def test_range_requests(
    http: requests.Session,
    sim: AtlassianSimulator,
    jira: dict[str, bytes],
    redirect: bool,
    spec: str,
    start: int,
    stop: int,
) -> None:
    pdf_id = next(iter(jira))
    params = {} if redirect else {"redirect": "false"}
    response = http.get(
        jira_url(sim, f"attachment/content/{pdf_id}"),
        params=params,
        headers={"Range": spec},
        auth=basic(sim),
        timeout=10,
    )
    assert response.status_code == 206
    assert len(response.history) == (1 if redirect else 0)
    assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/300000"
    assert response.headers["Content-Length"] == str(stop - start)
    assert response.content == jira[pdf_id][start:stop]
    assert sim.requests[-1].status == 206


@pytest.mark.parametrize("redirect", [True, False])
def test_unsatisfiable_and_ignored_ranges(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes], redirect: bool
) -> None:
    pdf_id = next(iter(jira))
    params = {} if redirect else {"redirect": "false"}

    def get(spec: str) -> requests.Response:
        url = jira_url(sim, f"attachment/content/{pdf_id}")
        return http.get(url, params=params, headers={"Range": spec}, auth=basic(sim), timeout=10)

    for spec in ("bytes=300000-", "bytes=400000-400010", "bytes=-0"):
        response = get(spec)
        assert response.status_code == 416
        assert response.headers["Content-Range"] == "bytes */300000"
    for spec in ("bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=x-"):  # ignored, as RFC 9110 allows
        response = get(spec)
        assert response.status_code == 200
        assert response.content == jira[pdf_id]


def test_large_download_is_streamed(http: requests.Session, sim: AtlassianSimulator) -> None:
    content = os.urandom(64 << 20)
    attachment_id = sim.add_jira_attachment("HW-1", "big.bin", content)
    url = jira_url(sim, f"attachment/content/{attachment_id}")
    with http.get(url, auth=basic(sim), stream=True, timeout=30) as response:
        assert response.status_code == 200
        hasher = hashlib.sha256()
        for chunk in response.iter_content(1 << 20):
            hasher.update(chunk)
    assert hasher.hexdigest() == sim.jira_attachments("HW-1")[0].sha256


# --------------------------------------------------------------------------------------------- Jira faults


@pytest.mark.parametrize(
    ("step", "suffix"),
    [
        ("jira-attachment", "attachment/{id}"),
        ("jira-issue", f"issue/{ISSUE}?fields=attachment"),
        ("jira-content", "attachment/content/{id}"),
        ("jira-content", "attachment/content/{id}?redirect=false"),
        ("media-download", "attachment/content/{id}"),
    ],
)
def test_jira_status_faults(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes], step: str, suffix: str
) -> None:
    pdf_id = next(iter(jira))
    url = jira_url(sim, suffix.format(id=pdf_id))
    sim.inject(step, Fault(status=429, retry_after=2))
    sim.inject(step, Fault(status=503))
    answers = [http.get(url, auth=basic(sim), timeout=10) for _ in range(3)]
    assert [(r.status_code, r.headers.get("Retry-After")) for r in answers] == [(429, "2"), (503, None), (200, None)]
    assert answers[0].json()["errorMessages"] == ["Simulated fault: HTTP 429"]
    if step == "media-download":
        assert [len(r.history) for r in answers] == [1, 1, 1]  # the 303 was served, the download failed


def test_drop_cuts_the_download_after_exactly_that_many_bytes(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    content = jira[pdf_id]
    sim.inject("media-download", Fault(drop_after_bytes=100_000))
    header, body = raw_get(redirect_location(http, sim, pdf_id))
    assert header.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: 300000" in header
    assert body == content[:100_000]
    assert sim.requests[-1].status is None  # recorded as a dropped connection
    # A client sees a broken body, then resumes where it stopped.
    url = jira_url(sim, f"attachment/content/{pdf_id}")
    sim.inject("media-download", Fault(drop_after_bytes=250_000))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(url, auth=basic(sim), timeout=10)
    resumed = http.get(url, headers={"Range": "bytes=250000-"}, auth=basic(sim), timeout=10)
    assert resumed.status_code == 206
    assert hashlib.sha256(content[:250_000] + resumed.content).hexdigest() == hashlib.sha256(content).hexdigest()


def test_drop_on_the_content_endpoint(http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]) -> None:
    pdf_id = next(iter(jira))
    url = jira_url(sim, f"attachment/content/{pdf_id}")
    sim.inject("jira-content", Fault(drop_after_bytes=1000))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(url, params={"redirect": "false"}, auth=basic(sim), timeout=10)
    sim.inject("jira-content", Fault(drop_after_bytes=1000))  # the 303 has no body: dropped unanswered
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url, auth=basic(sim), timeout=10)
    sim.inject("jira-content", Fault(drop_after_bytes=0))  # so is an error answer
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url, timeout=10)
    assert [r.status for r in sim.requests] == [None, None, None]
    assert http.get(url, auth=basic(sim), timeout=10).content == jira[pdf_id]


def test_drop_and_delay_on_the_jira_json_steps(
    http: requests.Session, sim: AtlassianSimulator, jira: dict[str, bytes]
) -> None:
    pdf_id = next(iter(jira))
    sim.inject("jira-attachment", Fault(drop_after_bytes=0))
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(jira_url(sim, f"attachment/{pdf_id}"), auth=basic(sim), timeout=10)
    sim.inject("jira-issue", Fault(delay_seconds=0.3))
    started = time.monotonic()
    assert http.get(jira_url(sim, f"issue/{ISSUE}"), auth=basic(sim), timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_new_steps_can_be_injected(sim: AtlassianSimulator) -> None:
    assert {"jira-attachment", "jira-issue", "jira-content", "media-download"} <= STEPS
    for step in ("jira-attachment", "jira-issue", "jira-content", "media-download"):
        sim.inject(step, Fault(status=500))
        with pytest.raises(ValueError, match="link"):
            sim.inject(step, Fault(status=500, after_success=True))
    sim.clear_faults()


# --------------------------------------------------------------------------------------------- command line


def test_command_line_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "devstack.atlassian_sim", "--port", "0", "--object", "1234:HW-42"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "the simulator printed nothing"
            info = json.loads(proc.stdout.readline())
            assert set(info) == {"baseUrl", "mediaBaseUrl", "workspaceId", "email", "apiToken", "cloudId"}
            assert info["mediaBaseUrl"] == info["baseUrl"] + "/media"
            response = requests.post(
                f"{info['baseUrl']}/jsm/assets/workspace/{info['workspaceId']}/v1/object/aql",
                json={"qlQuery": 'Key = "HW-42"'},
                auth=(info["email"], info["apiToken"]),
                timeout=10,
            )
            assert response.json()["values"][0]["id"] == "1234"
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0
