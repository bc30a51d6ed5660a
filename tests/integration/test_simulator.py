"""The Atlassian simulator, exercised over real HTTP with ``requests``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.atlassian_sim import AtlassianSimulator, Fault

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


def test_credentials_unknown_workspace_or_object_is_404(http: requests.Session, sim: AtlassianSimulator) -> None:
    url = f"{sim.base_url}/jsm/assets/workspace/nope/v1/attachments/object/{OBJ}/credentials"
    response = http.get(url, auth=basic(sim), timeout=10)
    assert response.status_code == 404
    assert "workspace not found" in response.json()["errorMessages"][0]
    response = http.get(assets_url(sim, "attachments/object/999/credentials"), auth=basic(sim), timeout=10)
    assert response.status_code == 404
    assert response.json()["errorMessages"] == ["No object found with id 999"]


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
    assert "already" in reused.json()["errorMessages"][0]
    assert len(sim.attachments(OBJ)) == 1


@pytest.mark.parametrize("field", ["contentType", "filename", "mediaId", "size", "comment"])
def test_link_fields_are_required_and_typed(http: requests.Session, sim: AtlassianSimulator, field: str) -> None:
    media_id = uploaded(http, sim, b"abc")
    item = attachment(media_id, 3)
    del item[field]
    missing = link(http, sim, [item])
    assert missing.status_code == 400
    assert field in missing.json()["errorMessages"][0]
    item = attachment(media_id, 3)
    item[field] = "3" if field == "size" else 3
    wrong = link(http, sim, [item])
    assert wrong.status_code == 400
    assert field in wrong.json()["errorMessages"][0]


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
    assert answers[0].json()["errorMessages"]
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
            assert set(info) == {"baseUrl", "mediaBaseUrl", "workspaceId", "email", "apiToken"}
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
