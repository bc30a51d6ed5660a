"""``assets-attach status`` and ``backfill`` as a user runs them: a subprocess against the local API front (the
real webhook), a worker polling the queue, moto and the simulator."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.test_cli import assert_no_secret, run_cli

from devstack.lambda_local import LocalApi, LocalWorker
from devstack.stack import LocalStack
from devstack.webhook_client import post


@pytest.fixture
def local_api(stack: LocalStack) -> Iterator[LocalApi]:
    with LocalApi() as api:
        yield api


@pytest.fixture
def running_worker(stack: LocalStack) -> Iterator[LocalWorker]:
    worker = stack.worker().start()
    yield worker
    worker.stop()


def api_env(stack: LocalStack, api: LocalApi) -> dict[str, str]:
    return {"ASSETS_ATTACH_API_URL": api.url, "ASSETS_ATTACH_TOKEN": stack.webhook_token}


def posts(api: LocalApi) -> int:
    """Webhook requests accepted so far (a job view never carries statusUrl without wait)."""
    return sum(b'"statusUrl"' in answer for answer in api.answers)


def seed(stack: LocalStack, objects: list[str], files_each: int) -> list[str]:
    """Objects in the simulator, files in S3; the manifest's CSV lines (source, objectId)."""
    lines = []
    for object_id in objects:
        stack.sim.add_object(object_id, f"BF-{object_id}")
        for i in range(files_each):
            key = f"backlog/{object_id}/file-{i}.txt"
            stack.put(key, f"{object_id} {i}".encode())
            lines.append(f"s3://{stack.bucket}/{key},{object_id}")
    return lines


def write_manifest(path: Path, lines: list[str]) -> Path:
    path.write_text("source,objectId\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_manifest_is_attached_once_reported_and_a_re_run_sends_nothing(
    stack: LocalStack, local_api: LocalApi, running_worker: LocalWorker, tmp_path: Path
) -> None:
    lines = seed(stack, ["2001", "2002"], 22) + seed(stack, ["2003"], 3)
    manifest = write_manifest(tmp_path / "library.csv", lines)
    report = tmp_path / "report.csv"

    done = run_cli("backfill", str(manifest), "--report", str(report), "--rate", "50", env=api_env(stack, local_api))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"47 of 47 rows attached; report in {report}"
    assert posts(local_api) == 5  # 2001: 20 + 2, 2002: 20 + 2, 2003: 3 (the rows interleave; the window gathers)
    rows = read_report(report)
    assert len(rows) == 47 and {r["status"] for r in rows} == {"attached"}
    attached = {a.id for o in ("2001", "2002", "2003") for a in stack.sim.attachments(o)}
    assert {r["attachmentId"] for r in rows} == {str(a) for a in attached} and len(attached) == 47
    assert [len(stack.sim.attachments(o)) for o in ("2001", "2002", "2003")] == [22, 22, 3]
    assert (tmp_path / "library.csv.state.jsonl").exists()

    again = run_cli("backfill", str(manifest), "--rate", "50", env=api_env(stack, local_api))

    assert again.returncode == 0, again.stderr
    assert "0 requests sent in this run" in again.stderr and posts(local_api) == 5
    assert sum(len(stack.sim.attachments(o)) for o in ("2001", "2002", "2003")) == 47
    state_text = (tmp_path / "library.csv.state.jsonl").read_text()
    assert_no_secret(stack, done.stdout, done.stderr, again.stderr, state_text, report.read_text())


def test_a_backfill_killed_midway_resumes_and_sends_no_row_twice(
    stack: LocalStack, local_api: LocalApi, running_worker: LocalWorker, tmp_path: Path
) -> None:
    objects = [str(3000 + i) for i in range(16)]
    manifest = write_manifest(tmp_path / "m.csv", seed(stack, objects, 2))
    state = tmp_path / "m.csv.state.jsonl"
    command = [sys.executable, "-m", "assets_attach", "backfill", str(manifest), "--rate", "4", "--in-flight", "3"]
    first = subprocess.Popen(command, env={**os.environ, **api_env(stack, local_api)}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not state.exists() or state.read_text().count('"sent"') < 6:
        assert first.poll() is None and time.monotonic() < deadline, "the backfill ended before it was killed"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    recorded = state.read_text().count('"sent"')
    assert recorded < 16

    resumed = run_cli("backfill", str(manifest), "--rate", "50", env=api_env(stack, local_api))
    third = run_cli("backfill", str(manifest), "--rate", "50", env=api_env(stack, local_api))

    assert resumed.returncode == 0, resumed.stderr
    assert third.returncode == 0 and "0 requests sent in this run" in third.stderr
    # Every pair once: the group in flight at the kill (if any) came back as the same job.
    names = Counter((o, a.filename) for o in objects for a in stack.sim.attachments(o))
    assert len(names) == 32 and set(names.values()) == {1}
    assert 16 <= posts(local_api) <= 17
    sent_jobs = [json.loads(line)["sent"] for line in state.read_text().splitlines() if '"sent"' in line]
    assert len(set(sent_jobs)) == 16


def test_bad_rows_stop_the_run_unless_asked_and_are_reported(
    stack: LocalStack, local_api: LocalApi, running_worker: LocalWorker, tmp_path: Path
) -> None:
    lines = seed(stack, ["4001"], 2)
    manifest = write_manifest(tmp_path / "m.csv", [*lines, "s3://b/x.txt,not-an-id", lines[0]])
    report = tmp_path / "r.csv"

    stopped = run_cli("backfill", str(manifest), "--report", str(report), env=api_env(stack, local_api))
    assert stopped.returncode == 1 and posts(local_api) == 0
    assert "line 4: invalid: objectId: 'not-an-id' is not an Assets object id" in stopped.stderr
    assert "line 5: duplicate: same source and object as line 2" in stopped.stderr
    assert "nothing sent" in stopped.stderr
    assert [r["status"] for r in read_report(report)] == ["unsent", "unsent", "invalid", "duplicate"]

    sent = run_cli("backfill", str(manifest), "--skip-bad-rows", "--report", str(report), "--rate", "50",
                   env=api_env(stack, local_api))  # fmt: skip
    assert sent.returncode == 1 and "2 of 4 rows attached" in sent.stdout
    assert sorted(r["status"] for r in read_report(report)) == ["attached", "attached", "duplicate", "invalid"]
    assert len(stack.sim.attachments("4001")) == 2


def test_the_dry_run_checks_every_row_and_sends_nothing(stack: LocalStack, tmp_path: Path) -> None:
    stack.sim.add_object("1235", "HW-43")
    stack.put("lib/a.txt", b"a" * 10)
    stack.put("lib/big.bin", b"b" * 2000)
    jira = stack.sim.add_jira_attachment("SUP-1", "spec.pdf", b"%PDF", "application/pdf")
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"source": f"s3://{stack.bucket}/lib/a.txt", "objectId": "1234"},
        {"source": f"s3://{stack.bucket}/lib/a.txt", "objectKey": "HW-43"},
        {"source": f"s3://{stack.bucket}/lib/missing.txt", "objectId": "1234"},
        {"source": f"s3://{stack.bucket}/lib/big.bin", "objectId": "1234"},
        {"source": f"s3://{stack.bucket}/lib/a.txt", "objectId": "999"},
        {"source": f"s3://{stack.bucket}/lib/a.txt", "objectKey": "NOPE-1"},
        {"source": f"jira:{jira}", "objectKey": "HW-42"},
        {"source": "jira:99999", "objectKey": "HW-42"},
        {"source": f"s3://{stack.bucket}/lib/a.txt", "objectId": "1234"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    done = run_cli("backfill", str(manifest), "--dry-run", env={"MAX_FILE_SIZE_BYTES": "1000"})

    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "line 3: source_not_found:" in out and "line 4: file_too_large:" in out
    assert "line 5: object_not_found: no Assets object 999" in out and "line 6: object_not_found" in out
    assert "line 8: source_not_found" in out and "line 9: duplicate: same source and object as line 1" in out
    failing = [line.split(":")[0] for line in out.splitlines() if line.startswith("line ")]
    assert failing == ["line 3", "line 4", "line 5", "line 6", "line 8", "line 9"]  # in line order
    assert "dry run: 9 rows, 5 files, 0.0 MiB to upload, 5 objects" in out
    kinds = out.splitlines()[-1].removeprefix("6 rows would fail: ").split(", ")
    assert sorted(kinds) == ["duplicate 1", "file_too_large 1", "object_not_found 2", "source_not_found 2"]
    aql = [r for r in stack.sim.requests if r.path.endswith("/object/aql")]
    assert len(aql) == 2  # one for the ids, one for the keys: not one per row
    assert not (tmp_path / "m.jsonl.state.jsonl").exists()
    assert_no_secret(stack, done.stdout, done.stderr)


def test_a_prefix_is_walked_by_the_s3_drop_convention(
    stack: LocalStack, local_api: LocalApi, running_worker: LocalWorker, tmp_path: Path
) -> None:
    stack.sim.add_object("1235", "HW-43")
    stack.put("old/HW-42/manual.pdf", b"manual")
    stack.put("old/1235/photo.jpg", b"photo")
    stack.put("old/loose.txt", b"names no object")
    stack.put(
        "old/misc/contract.pdf", b"contract", **{"assets-object-id": "1234, 1235", "assets-filename": "Vertrag%20A.pdf"}
    )
    out = tmp_path / "old.jsonl"

    done = run_cli("backfill", "--prefix", f"s3://{stack.bucket}/old/", "--object-from", "metadata",
                   "--manifest-out", str(out), "--rate", "50", env=api_env(stack, local_api))  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert f"skipped s3://{stack.bucket}/old/loose.txt: names no Assets object" in done.stderr
    assert "4 of 4 rows attached" in done.stdout
    assert sorted(a.filename for a in stack.sim.attachments("1234")) == ["Vertrag A.pdf", "manual.pdf"]
    assert sorted(a.filename for a in stack.sim.attachments("1235")) == ["Vertrag A.pdf", "photo.jpg"]

    by_key = run_cli("backfill", "--prefix", f"s3://{stack.bucket}/old/", "--object-from", "key", "--dry-run",
                     "--manifest-out", str(tmp_path / "k.jsonl"))  # fmt: skip
    assert "skipped" in by_key.stderr and "misc/contract.pdf" in by_key.stderr  # "misc" is no object
    assert "dry run: 2 rows" in by_key.stdout


def test_status_prints_the_job_and_exits_by_its_state(
    stack: LocalStack, local_api: LocalApi, worker: LocalWorker
) -> None:
    stack.put("attachments/a.txt", b"a")
    job_id = post(local_api.url, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()[
        "jobId"
    ]

    queued = run_cli("status", job_id, env=api_env(stack, local_api))
    worker.drain()
    succeeded = run_cli("status", job_id, env=api_env(stack, local_api))
    missing = run_cli("status", "0" * 32, env=api_env(stack, local_api))
    unnamed = run_cli("status", job_id, without=("ASSETS_ATTACH_API_URL", "ASSETS_ATTACH_TOKEN"))
    wrong_token = run_cli("status", job_id, env={**api_env(stack, local_api), "ASSETS_ATTACH_TOKEN": "nope"})

    assert queued.returncode == 3 and json.loads(queued.stdout)["status"] == "queued"
    assert succeeded.returncode == 0 and json.loads(succeeded.stdout)["files"][0]["status"] == "attached"
    assert missing.returncode == 1 and "HTTP 404 job_not_found" in missing.stderr
    assert unnamed.returncode == 1 and "--stack NAME" in unnamed.stderr
    assert wrong_token.returncode == 1 and "401" in wrong_token.stderr
    assert_no_secret(stack, queued.stdout, succeeded.stdout, missing.stderr, wrong_token.stderr)


def test_retry_runs_a_failed_job_again_once_its_cause_is_fixed(
    stack: LocalStack, local_api: LocalApi, worker: LocalWorker
) -> None:
    """``assets-attach retry JOB_ID``: the object was created after the job failed; the retry attaches the file.
    A job that is not failed is refused with the API's reason."""
    stack.put("attachments/a.txt", b"a")
    body = {"objectId": "4321", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}  # no such object yet
    job_id = post(local_api.url, stack, body).json()["jobId"]
    worker.drain()
    failed = run_cli("status", job_id, env=api_env(stack, local_api))
    assert failed.returncode == 1 and json.loads(failed.stdout)["status"] == "failed"

    stack.sim.add_object("4321", "HW-4321")
    retried = run_cli("retry", job_id, env=api_env(stack, local_api))
    worker.drain()
    done = run_cli("status", job_id, env=api_env(stack, local_api))
    again = run_cli("retry", job_id, env=api_env(stack, local_api))

    assert retried.returncode == 0 and json.loads(retried.stdout)["jobId"] == job_id, retried.stderr
    assert done.returncode == 0 and json.loads(done.stdout)["files"][0]["status"] == "attached"
    assert [a.filename for a in stack.sim.attachments("4321")] == ["a.txt"]
    assert again.returncode == 1 and "HTTP 409 not_retryable" in again.stderr
    assert_no_secret(stack, retried.stdout, retried.stderr, again.stderr)


def test_a_stack_is_found_by_its_name(stack: LocalStack, local_api: LocalApi, worker: LocalWorker) -> None:
    """--stack NAME: the API from the stack's WebhookUrl output, the token from the secret its outputs name."""
    template = {
        "Parameters": {"MaxFileSizeBytes": {"Type": "String", "Default": "1073741824"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "WebhookUrl": {"Value": f"{local_api.url}/attachments"},
            "AtlassianSecretArn": {"Value": stack.secret_id},
        },
    }
    stack.client("cloudformation").create_stack(StackName="assets-attach-test", TemplateBody=json.dumps(template))
    stack.put("attachments/b.txt", b"b")
    job_id = post(local_api.url, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/b.txt"}).json()[
        "jobId"
    ]
    worker.drain()

    done = run_cli("status", job_id, "--stack", "assets-attach-test", without=("ASSETS_ATTACH_API_URL",))
    unknown = run_cli("status", job_id, "--stack", "no-such-stack")

    assert done.returncode == 0, done.stderr
    assert unknown.returncode == 1 and "no-such-stack" in unknown.stderr
    assert_no_secret(stack, done.stdout, done.stderr, unknown.stderr)
