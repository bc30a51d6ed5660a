"""``doctor --live``'s pure parts: which step a call is, its path with ids elided, reply shapes against our models,
what a recorded call keeps (no value), and the conformance comparison of two records."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import requests

from assets_attach.atlassian.assets_client import Attachment
from assets_attach.atlassian.media_api import MediaCredentials
from assets_attach.live_check import (
    CallLog,
    MediaFileReply,
    check_shape,
    classify,
    elide_ids,
    flatten_shape,
    shape_of,
)
from devstack.conformance import compare_records

API = "https://api.atlassian.com"
WS = "5b8c0f1e-7d1a-4c6e-9f2b-0a1b2c3d4e5f"
MEDIA = "https://api.media.atlassian.com"
SIM_MEDIA = "http://127.0.0.1:40123/media"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("method", "url", "step", "path"),
    [
        (
            "GET",
            f"{API}/jsm/assets/workspace/{WS}/v1/attachments/object/1234/credentials",
            "credentials",
            "/jsm/assets/workspace/{ws}/v1/attachments/object/{id}/credentials",
        ),
        ("POST", f"{API}/jsm/assets/workspace/{WS}/v1/attachments/object/88", "link", None),
        ("GET", f"{API}/jsm/assets/workspace/{WS}/v1/attachments/object/88?startAt=0", "list", None),
        ("DELETE", f"{API}/jsm/assets/workspace/{WS}/v1/attachments/9001", "delete", None),
        # the API gateway's route (scoped tokens): the cloud id is elided too
        (
            "GET",
            f"{API}/ex/jira/0a1b2c3d-1111-2222-3333-444455556666/jsm/assets/workspace/{WS}/v1/attachments/object/7/credentials",
            "credentials",
            "/ex/jira/{cloudId}/jsm/assets/workspace/{ws}/v1/attachments/object/{id}/credentials",
        ),
        ("POST", f"{MEDIA}/file?name=a.txt", "upload", "{media}/file"),
        ("POST", f"{MEDIA}/file/binary?name=a.txt", "upload", "{media}/file/binary"),
        ("POST", f"{MEDIA}/file/upload", "file-create", "{media}/file/upload"),
        ("GET", f"{MEDIA}/file/3f1c2a9e-0000-4000-8000-123456789abc", "file-info", "{media}/file/{fileId}"),
        ("POST", f"{MEDIA}/upload?createUpTo=1&hashAlgorithm=sha256", "upload-create", "{media}/upload"),
        ("PUT", f"{MEDIA}/chunk/sha256-{'ab' * 32}-5242880?uploadId=u1&partNumber=1", "chunk", "{media}/chunk/{etag}"),
        ("PUT", f"{MEDIA}/upload/9c1e-upload/chunks", "append", "{media}/upload/{uploadId}/chunks"),
        # the simulator's media service lives under /media: the same step and path as the real one
        ("POST", f"{SIM_MEDIA}/file?name=a.txt", "upload", "{media}/file"),
    ],
)
def test_a_call_is_classified_by_method_and_path_with_its_ids_elided(
    method: str, url: str, step: str, path: str | None
) -> None:
    found_step, found_path = classify(method, url, [MEDIA, SIM_MEDIA])
    assert found_step == step
    if path is not None:
        assert found_path == path
    for identifier in (WS, "1234", "88", "9001", "u1", "a.txt", "ab" * 32):
        assert identifier not in found_path


def test_a_call_no_route_knows_is_other_with_its_id_segments_elided() -> None:
    step, path = classify("GET", f"{MEDIA}/file/3f1c2a9e-0000-4000-8000-123456789abc/artifacts/x", [MEDIA])
    assert (step, path) == ("other", "{media}/file/{id}/artifacts/x")
    assert classify("PATCH", f"{API}/jsm/assets/workspace/{WS}/v1/object/42", []) == (
        "other",
        "/jsm/assets/workspace/{id}/v1/object/{id}",
    )


@pytest.mark.parametrize(
    ("path", "elided"),
    [
        ("/v1/object/42", "/v1/object/{id}"),
        ("/file/3f1c2a9e-0000-4000-8000-123456789abc", "/file/{id}"),
        (f"/chunk/sha256-{'0' * 64}-12", "/chunk/{id}"),
        ("/upload/abcDEF0123456789xyz/chunks", "/upload/{id}/chunks"),
        ("/rest/servicedeskapi/assets/workspace", "/rest/servicedeskapi/assets/workspace"),
        ("/file/binary", "/file/binary"),
    ],
)
def test_elide_ids(path: str, elided: str) -> None:
    assert elide_ids(path) == elided


def test_a_reply_is_checked_against_the_model_the_engine_reads_it_with() -> None:
    good = check_shape(MediaCredentials, {"clientId": "c", "mediaBaseUrl": MEDIA, "mediaJwtToken": JWT, "x": 1})
    assert good.ok
    assert good.present == ("clientId", "mediaBaseUrl", "mediaJwtToken")
    assert good.unexpected == ("x",)

    bad = check_shape(MediaCredentials, {"clientId": 5, "mediaBaseUrl": MEDIA})
    assert not bad.ok
    assert "mediaJwtToken" in bad.missing
    assert any(m.startswith("clientId (") for m in bad.missing)  # a number where a string is needed
    assert JWT not in bad.describe()


def test_nested_and_list_replies_name_their_fields_by_path() -> None:
    upload = check_shape(MediaFileReply, {"data": {"id": "m1", "size": 3, "artifacts": {}}})
    assert upload.ok and upload.present == ("data", "data.id", "data.size")
    assert upload.unexpected == ("data.artifacts",)
    assert check_shape(MediaFileReply, {"data": {}}).missing == ("data.id",)

    link = check_shape(list[Attachment], [{"id": 7, "filename": "a.txt", "author": "Bot"}])
    assert link.ok and "[].filename" in link.present and link.unexpected == ("[].author",)
    assert check_shape(list[Attachment], [{"filename": "a.txt"}]).missing == ("[].id",)


def test_shapes_keep_keys_and_types_never_values() -> None:
    reply = {"data": [{"id": "secret-id", "n": 1, "ok": True, "f": 1.5, "none": None}], "token": JWT}
    shape = shape_of(reply)
    assert shape == {
        "data": [{"id": "string", "n": "integer", "ok": "boolean", "f": "number", "none": "null"}],
        "token": "string",
    }
    assert "secret-id" not in json.dumps(shape) and JWT not in json.dumps(shape)
    assert flatten_shape(shape)["data[].id"] == "string"
    assert shape_of([{"a": 1}, {"b": "x"}]) == [{"a": "integer", "b": "string"}]  # items merged


def _response(method: str, url: str, status: int, reply: Any, request_headers: dict[str, str]) -> requests.Response:
    request = requests.Request(method, url, headers=request_headers, json={"attachments": [{"mediaId": "m"}]})
    response = requests.Response()
    response.request = request.prepare()
    response.status_code = status
    response._content = json.dumps(reply).encode()
    response.headers["Content-Type"] = "application/json"
    response.elapsed = timedelta(milliseconds=12)
    return response


def test_a_recorded_call_holds_no_header_value_and_no_body_value() -> None:
    log = CallLog()
    log(
        _response(
            "GET",
            f"{API}/jsm/assets/workspace/{WS}/v1/attachments/object/1234/credentials",
            200,
            {"clientId": "client-1", "mediaBaseUrl": MEDIA, "mediaJwtToken": JWT},
            {"Authorization": "Basic Ym90QGV4YW1wbGUuY29tOnRva2Vu"},
        )
    )
    log(_response("POST", f"{MEDIA}/file?name=Secret%20Plan.txt", 201, {"data": {"id": "m1", "size": 5}}, {}))
    first, second = log.calls
    assert (first.step, first.status, first.matched) == ("credentials", 200, True)
    assert (second.step, second.path, second.query, second.reported_size) == ("upload", "{media}/file", ("name",), 5)
    assert "authorization" in first.request_headers

    text = json.dumps([c.record() for c in log.calls])
    for value in (JWT, "Ym90QGV4YW1wbGUuY29tOnRva2Vu", "Basic", "client-1", WS, "1234", "Secret", "m1", MEDIA):
        assert value not in text


def _record(*calls: tuple[str, str, str, int, Any]) -> dict[str, Any]:
    return {
        "format": "assets-attach-live-record/1",
        "calls": [
            {"step": s, "method": m, "path": p, "status": st, "replyBody": reply} for s, m, p, st, reply in calls
        ],
    }


CREDENTIALS = ("credentials", "GET", "/jsm/assets/workspace/{ws}/v1/attachments/object/{id}/credentials", 200)
DELETE = ("delete", "DELETE", "/jsm/assets/workspace/{ws}/v1/attachments/{attachmentId}")


def test_conformance_passes_when_the_simulator_gives_every_call_and_reply_field() -> None:
    real = _record((*CREDENTIALS, {"clientId": "string"}), (*DELETE, 204, None))
    simulated = _record((*CREDENTIALS, {"clientId": "string", "extra": "string"}), (*DELETE, 204, None))
    differences, notes = compare_records(real, simulated)
    assert differences == []
    assert notes == [f"credentials: GET {CREDENTIALS[2]} -> 200: only the simulator sends extra"]


def test_conformance_fails_on_a_field_the_simulator_lacks_a_type_it_changes_or_a_status_it_never_gives() -> None:
    real = _record(
        (*CREDENTIALS, {"clientId": "string", "expiresIn": "integer", "mediaBaseUrl": "string"}),
        (*DELETE, 404, {"errorMessage": "string"}),
    )
    simulated = _record((*CREDENTIALS, {"clientId": "string", "mediaBaseUrl": "integer"}), (*DELETE, 204, None))
    differences, _ = compare_records(real, simulated)
    assert len(differences) == 3
    assert any("expiresIn (integer) is not sent" in d for d in differences)
    assert any("mediaBaseUrl is string from the service, integer from the simulator" in d for d in differences)
    assert any("-> 404: the simulator never gave this (it answered 204)" in d for d in differences)
