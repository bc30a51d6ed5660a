"""``assets-attach doctor --live`` as a user runs it (a subprocess against moto and the simulator), and
``make conformance``'s check of the simulator against a record."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assets_attach.live_check import SMALL_FILE_BYTES, sample_file
from devstack.atlassian_sim import Fault
from devstack.stack import LocalStack, child_env

ROW = re.compile(r"^(ok|BAD|err)\s+(\S+)\s+(GET|POST|PUT|DELETE|PATCH)\s+(\S+)\s+(\d{3})\s+\d+\s", re.MULTILINE)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assets_attach", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "POWERTOOLS_LOG_LEVEL": "ERROR", **(env or {})},
        timeout=180,
        check=False,
    )


def rows(output: str) -> list[tuple[str, str, str, str, int]]:
    return [(mark, step, method, path, int(status)) for mark, step, method, path, status in ROW.findall(output)]


def test_live_check_passes_prints_one_row_per_call_and_deletes_its_attachment(stack: LocalStack) -> None:
    done = run_cli("doctor", "--live", "--object-id", "1234")

    assert done.returncode == 0, done.stdout + done.stderr
    found = rows(done.stdout)
    assert [r[1] for r in found] == ["credentials", "upload", "link", "delete"]
    assert all(mark == "ok" for mark, *_ in found)
    assert len(found) == len(stack.sim.requests)  # every call the simulator saw, and nothing else
    assert found[0][3] == "/jsm/assets/workspace/{ws}/v1/attachments/object/{id}/credentials"
    assert "present clientId, mediaBaseUrl, mediaJwtToken" in done.stdout
    assert f"sent {SMALL_FILE_BYTES} bytes, the service reports {SMALL_FILE_BYTES}" in done.stdout
    assert ": deleted" in done.stdout and "every step matched" in done.stdout
    assert stack.sim.attachments("1234") == []


def test_live_check_chunked_sends_a_file_in_chunks_too(stack: LocalStack) -> None:
    done = run_cli("doctor", "--live", "--object-id", f"{stack.sim.workspace_id}:1234", "--chunked")

    assert done.returncode == 0, done.stdout + done.stderr
    steps = [r[1] for r in rows(done.stdout)]
    assert steps[:4] == ["credentials", "upload", "link", "delete"]
    assert steps[4:] == ["credentials", "upload-create", "chunk", "chunk", "append", "file-create", "link", "delete"]
    assert len(steps) == len(stack.sim.requests)
    assert "single upload: accepted ({media}/file)" in done.stdout
    assert "chunked upload: accepted ({media}/file/upload)" in done.stdout
    assert stack.sim.attachments("1234") == []
    assert [u.chunked_upload_id is not None for u in stack.sim.uploads.values()].count(True) == 1


@pytest.mark.parametrize(
    ("mode", "note"),
    [
        ("createFile", "the upload reply had no size: checked with GET {media}/file/{id}"),
        ("/file/binary", "POST {media}/file answered 404; the engine went on without it"),
        ("chunks refused", "the site refuses chunked uploads: files go in one POST"),
    ],
)
def test_the_live_check_passes_in_each_real_service_mode_and_says_how_the_site_differs(
    stack: LocalStack, mode: str, note: str
) -> None:
    """ATLASSIAN_FACTS.md: each answer the real service may give, as the simulator plays it."""
    if mode == "createFile":
        stack.sim.upload_reply = "createFile"
    elif mode == "/file/binary":
        stack.sim.upload_path = "/file/binary"
    else:
        stack.sim.inject("media-chunk", Fault(status=403, times=99))

    done = run_cli("doctor", "--live", "--object-id", "1234", "--chunked")

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"note: {note}" in done.stdout
    assert "every step matched" in done.stdout
    assert stack.sim.attachments("1234") == []


def test_a_reply_of_the_wrong_shape_fails_and_names_the_step(stack: LocalStack) -> None:
    stack.sim.inject("credentials", Fault(status=200))  # a 200 whose body is an error message, not credentials

    done = run_cli("doctor", "--live", "--object-id", "1234")

    assert done.returncode == 1
    [(mark, step, *_)] = rows(done.stdout)
    assert (mark, step) == ("BAD", "credentials")
    assert "missing clientId, mediaBaseUrl, mediaJwtToken" in done.stdout
    assert "unexpected errorMessage" in done.stdout  # the attachment endpoints' singular error shape
    assert "FAIL  credentials did not match" in done.stdout


def test_a_failing_step_fails_the_check_and_is_named(stack: LocalStack) -> None:
    stack.sim.inject("upload", Fault(status=503))

    done = run_cli("doctor", "--live", "--object-id", "1234")

    assert done.returncode == 1
    assert [(r[0], r[1], r[4]) for r in rows(done.stdout)] == [("ok", "credentials", 200), ("err", "upload", 503)]
    assert "single upload: not accepted at step upload" in done.stdout
    assert "FAIL  upload did not match" in done.stdout
    assert stack.sim.attachments("1234") == []


def test_without_a_delete_call_the_attachment_stays_and_the_way_to_remove_it_is_shown(stack: LocalStack) -> None:
    stack.sim.inject("delete", Fault(status=405))

    done = run_cli("doctor", "--live", "--object-id", "1234")

    assert done.returncode == 0, done.stdout  # the delete call is undocumented: not having it is no mismatch
    [attachment] = stack.sim.attachments("1234")
    assert f"attachment {attachment.id} ({attachment.filename}) on object 1234: kept" in done.stdout
    assert "answered 405: not offered" in done.stdout
    assert f"in Assets open object 1234, its Attachments tab, and delete {attachment.filename}" in done.stdout


def test_the_record_holds_no_token_jwt_email_or_file_byte(stack: LocalStack, tmp_path: Path) -> None:
    record_file = tmp_path / "live.json"

    done = run_cli("doctor", "--live", "--object-id", "1234", "--chunked", "--record", str(record_file))

    assert done.returncode == 0, done.stdout + done.stderr
    text = record_file.read_text(encoding="utf-8")
    record = json.loads(text)
    assert [c["step"] for c in record["calls"]] == [r[1] for r in rows(done.stdout)]
    assert all("authorization" in c["requestHeaders"] for c in record["calls"])  # its name only
    nonce = re.search(r"assets-attach-live-check-(\S+)-single\.txt", done.stdout)
    assert nonce is not None
    content = sample_file(nonce.group(1), SMALL_FILE_BYTES, "single").data
    secrets = [stack.sim.api_token, stack.sim.email, stack.webhook_token, *stack.sim.issued_tokens]
    for value in [*secrets, "Basic ", "Bearer ", "eyJ", content[:40].decode(), nonce.group(1)]:
        assert value not in text, f"{value[:8]}… is in the record"
    assert stack.sim.workspace_id not in text and "/1234" not in text  # ids are elided
    for text_out in (done.stdout, done.stderr):
        assert stack.sim.api_token not in text_out and "eyJ" not in text_out


def conformance(record: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack.conformance", str(record)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=180,
        check=False,
    )


def test_conformance_passes_on_a_record_of_the_local_stack_and_fails_on_a_doctored_one(
    stack: LocalStack, tmp_path: Path
) -> None:
    made = tmp_path / "made.json"
    assert run_cli("doctor", "--live", "--object-id", "1234", "--record", str(made)).returncode == 0
    record = json.loads(made.read_text(encoding="utf-8"))
    upload = next(c for c in record["calls"] if c["step"] == "upload")
    upload["replyBody"]["data"]["mediaMetadata"] = {"duration": "integer"}  # a field only the "real" service sends
    delete = next(c for c in record["calls"] if c["step"] == "delete")
    delete["status"] = 404
    doctored = tmp_path / "doctored.json"
    doctored.write_text(json.dumps(record), encoding="utf-8")

    same = conformance(made)
    differs = conformance(doctored)

    assert same.returncode == 0, same.stdout + same.stderr
    assert "DIFF" not in same.stdout
    assert differs.returncode == 1, differs.stdout + differs.stderr
    assert "upload: POST {media}/file -> 201: reply field data.mediaMetadata (object) is not sent" in differs.stdout
    assert "delete: DELETE" in differs.stdout and "-> 404: the simulator never gave this" in differs.stdout
