"""The backfill's rules offline: manifest rows, duplicates, grouping, the state file, sending and following
against an in-memory stack, the report, and the API client's back-off (an in-memory session, no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from assets_attach.api_document import JobAccepted
from assets_attach.attach_request import parse_attach_request
from assets_attach.backfill.grouping import Group, group_rows
from assets_attach.backfill.manifest import BadRow, Fingerprints, ManifestError, Row, checked_rows, read_manifest, scan
from assets_attach.backfill.progress import Progress
from assets_attach.backfill.run import Backfill, Pace, report_rows, write_report
from assets_attach.backfill.state import StateFile, state_path
from assets_attach.stack_api import RemoteJob, StackApi, StackApiError, StackTarget, api_base


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ manifest


def test_csv_rows_are_checked_and_bad_ones_named_by_line_with_the_reason(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "m.csv",
        "source,objectId,objectKey,filename,comment\n"
        "s3://b/docs/a.pdf,1234,,A.pdf,first\n"  # line 2: good
        "s3://b/docs/b.pdf,,HW-42,,\n"  # 3: good, by key
        "s3://b/docs/,1234,,,\n"  # 4: a folder
        "jira:abc,1234,,,\n"  # 5: not a Jira id
        "s3://b/c.pdf,1234,HW-42,,\n"  # 6: both objects
        "s3://b/d.pdf,,,,\n"  # 7: no object
        'ftp://x/y,1234,,,\n"s3://b/e.pdf",1234,,"a/b",\n'  # 8: scheme, 9: a slash in the name
        's3://b/multi.pdf,ws-1:77,,,"two\nlines"\n'  # 10-11: one record on two lines, prefixed id
        "s3://b/f.pdf,1234,,,,surplus\n",  # 12: one value too many
    )

    items = list(read_manifest(manifest))

    good = [i for i in items if isinstance(i, Row)]
    bad = {i.line: i.reason for i in items if isinstance(i, BadRow)}
    assert [(r.line, r.source, r.target) for r in good] == [
        (2, "s3://b/docs/a.pdf", "id:1234"),
        (3, "s3://b/docs/b.pdf", "key:HW-42"),
        (10, "s3://b/multi.pdf", "id:77"),
    ]
    assert good[0].filename == "A.pdf" and good[0].comment == "first" and good[2].object_id == "ws-1:77"
    assert sorted(bad) == [4, 5, 6, 7, 8, 9, 12]
    assert "folder" in bad[4] and "not a Jira attachment id" in bad[5]
    assert "exactly one of objectId and objectKey" in bad[6] and "exactly one" in bad[7]
    assert bad[8].startswith("source:") and bad[9].startswith("filename:") and "more than the header" in bad[12]


def test_json_lines_rows_and_their_errors(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "m.jsonl",
        '{"source": "jira:10001", "objectId": 1234}\n'
        "\n"
        "{not json\n"
        "[1, 2]\n"
        '{"source": "s3://b/a", "objectId": "1234", "objectID": "x"}\n'
        '{"source": "s3://b/a", "objectKey": "not a key"}\n'
        '{"source": "s3://b/a", "objectId": "1234", "comment": "' + "c" * 2001 + '"}\n',
    )
    items = list(read_manifest(manifest))
    assert isinstance(items[0], Row) and items[0].jira_id == "10001" and items[0].object_id == "1234"
    bad = {i.line: i.reason for i in items if isinstance(i, BadRow)}
    assert sorted(bad) == [3, 4, 5, 6, 7]
    assert "not valid JSON" in bad[3] and "JSON object" in bad[4] and "'objectID' is not a column" in bad[5]
    assert "objectKey" in bad[6] and "2000" in bad[7]


def test_a_manifest_with_an_unknown_column_is_refused_whole(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="line 1"):
        list(read_manifest(write(tmp_path, "m.csv", "source,objectid\ns3://b/a,1\n")))
    with pytest.raises(ManifestError, match="cannot read"):
        list(read_manifest(tmp_path / "missing.csv"))


def test_a_repeated_pair_is_a_duplicate_of_its_first_line(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "m.csv",
        "source,objectId,filename\ns3://b/a,1234,\ns3://b/a,1234,Other name\ns3://b/a,99,\ns3://b/a,ws:1234,\n",
    )
    prints, bad = scan(manifest)
    items = list(checked_rows(manifest, prints.repeated()))
    assert bad == 0 and len(prints) == 4
    dups = [(i.line, i.reason) for i in items if isinstance(i, BadRow)]
    assert dups == [(3, "same source and object as line 2"), (5, "same source and object as line 2")]


def test_fingerprints_hold_eight_bytes_each_and_find_what_was_added() -> None:
    prints = Fingerprints()
    Fingerprints.SORT_CHUNK = 7  # several chunks merged
    try:
        for value in [5, 3, 2**63 + 1, 3, 99, 1, 42, 8, 7, 6, 5]:
            prints.add(value)
        prints.seal()
    finally:
        Fingerprints.SORT_CHUNK = 1 << 13
    assert all(v in prints for v in (1, 3, 5, 2**63 + 1)) and 4 not in prints and "x" not in prints
    assert prints.repeated() == {3, 5} and prints.distinct() == 9


# ------------------------------------------------------------------------------------------------ grouping


def rows_for(objects: list[str], files: int) -> list[Row]:
    line = 1
    out = []
    for i in range(files):
        for obj in objects:
            line += 1
            out.append(Row(line, f"s3://b/{obj}/f{i}.bin", obj, None))
    return out


def test_rows_for_one_object_are_grouped_twenty_files_to_a_job() -> None:
    groups = list(group_rows(rows_for(["1"], 45)))
    assert [len(g.rows) for g in groups] == [20, 20, 5]
    assert list(group_rows(rows_for(["1"], 45))) == groups  # a pure function of the manifest


def test_interleaved_objects_are_gathered_and_the_window_bounds_what_waits() -> None:
    rows = rows_for(["1", "2", "3"], 30)  # 1, 2, 3, 1, 2, 3, ...
    assert sorted(len(g.rows) for g in group_rows(rows)) == [10, 10, 10, 20, 20, 20]
    small_window = list(group_rows(rows, window=4))
    assert all({r.target for r in g.rows} == {g.rows[0].target} for g in small_window)
    assert max(len(g.rows) for g in small_window) <= 4  # flushed early: memory stays bounded
    assert sum(len(g.rows) for g in small_window) == 90


def test_a_group_is_a_body_the_webhook_accepts() -> None:
    rows = [
        Row(2, "s3://b/a.pdf", "1234", None, "Vertrag.pdf", "from the archive"),
        Row(3, "jira:10001", "1234", None),
        Row(4, "s3://b/b.pdf", "1234", None),
    ]
    body = Group(tuple(rows)).body()
    assert body == {
        "objectId": "1234",
        "files": [
            {"s3Uri": "s3://b/a.pdf", "filename": "Vertrag.pdf", "comment": "from the archive"},
            {"s3Uri": "s3://b/b.pdf"},
        ],
        "jiraAttachments": ["10001"],
    }
    request = parse_attach_request(body, lambda: "ws")
    assert [f.key for f in request.files] == ["a.pdf", "b.pdf"] and request.jira and request.jira.ids == ("10001",)
    assert Group(tuple(rows)).row_named_by("files[1].key") == rows[2]
    assert Group(tuple(rows)).row_named_by("jiraAttachments[0]") == rows[1]
    assert Group(tuple(rows)).row_named_by("objectId") is None

    named_jira = Row(5, "jira:10002", None, "HW-42", "Plan.pdf", "note")
    assert [g.rows for g in group_rows([rows[1], named_jira])] == [(named_jira,), (rows[1],)]
    alone = Group((named_jira,)).body()
    assert alone == {"objectKey": "HW-42", "jiraAttachments": ["10002"], "filename": "Plan.pdf", "comment": "note"}
    assert parse_attach_request(alone, lambda: "ws").jira is not None


# ------------------------------------------------------------------------------------------------ sending


class FakeStack:
    """The webhook API in memory: the same body again is the same job (its idempotency); jobs finish when asked."""

    def __init__(self, refuse: dict[str, tuple[int, str]] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.by_body: dict[str, str] = {}
        self.refuse = refuse or {}  # source → (status, field) of the refusal
        self.finish_after_gets = 0
        self.gets = 0

    def post_job(self, body: dict[str, object]) -> JobAccepted:
        self.bodies.append(body)
        files = [f["s3Uri"] for f in body.get("files", [])]  # type: ignore[attr-defined]
        for i, source in enumerate(files):
            if source in self.refuse:
                status, what = self.refuse[source]
                raise StackApiError(f"refused {source}", status=status, api_code="x", field=f"files[{i}].{what}")
        key = json.dumps(body, sort_keys=True)
        if key not in self.by_body:
            job_id = f"job{len(self.jobs) + 1}"
            self.by_body[key] = job_id
            self.jobs[job_id] = {"body": body, "gets": 0}
        job_id = self.by_body[key]
        return JobAccepted(jobId=job_id, statusUrl=f"http://api/attachments/jobs/{job_id}")

    def get_job(self, job_id: str) -> RemoteJob:
        self.gets += 1
        job = self.jobs[job_id]
        job["gets"] += 1
        body = job["body"]
        done = job["gets"] > self.finish_after_gets
        files = []
        for i, file in enumerate(body.get("files", [])):
            bucket, _, key = file["s3Uri"].removeprefix("s3://").partition("/")
            failed = key.startswith("fail")
            status = ("failed" if failed else "attached") if done else "pending"
            files.append(
                {"objectId": "1", "bucket": bucket, "key": key, "filename": key, "size": 100, "status": status,
                 **({"attachmentId": f"{job_id}-{i}"} if status == "attached" else {}),
                 **({"error": "s3-read: the S3 object was deleted"} if status == "failed" else {})}
            )  # fmt: skip
        status = ("failed" if any(f["status"] == "failed" for f in files) else "succeeded") if done else "running"
        return RemoteJob.model_validate(
            {"jobId": job_id, "status": status, "files": files, "attempts": 1, "createdAt": "t", "updatedAt": "t"}
        )


class Silent:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def backfill(manifest: Path, api: FakeStack, **pace: Any) -> Backfill:
    prints, _ = scan(manifest)
    progress = Progress(Silent(), len(prints), tty=False)  # type: ignore[arg-type]
    return Backfill(
        manifest,
        prints.repeated(),
        api,
        StateFile(state_path(manifest)),
        progress,
        Pace(**{"rate": 1000.0, "poll_seconds": 0.0, **pace}),
        sleep=lambda _: None,
    )


def manifest_of(tmp_path: Path, files: int, objects: int = 1, bad: str = "") -> Path:
    lines = ["source,objectId"] + [f"s3://b/o{i % objects}/f{i}.bin,{1000 + i % objects}" for i in range(files)]
    return write(tmp_path, "m.csv", "\n".join(lines) + "\n" + bad)


def report(manifest: Path) -> list[list[str]]:
    prints, _ = scan(manifest)
    path = manifest.with_suffix(".report.csv")
    write_report(report_rows(manifest, prints.repeated(), StateFile(state_path(manifest))), path)
    return [line.split(",") for line in path.read_text().splitlines()]


def test_rows_are_sent_as_jobs_recorded_followed_and_reported(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, 45, objects=2)
    api = FakeStack()
    api.finish_after_gets = 1

    run = backfill(manifest, api, in_flight=2)
    run.run()

    assert [len(b["files"]) for b in api.bodies] == [20, 20, 3, 2]
    records = list(StateFile(state_path(manifest)).records())
    assert sum(1 for r in records if "sent" in r) == 4 and sum(1 for r in records if "done" in r) == 4
    assert run.state.attached == 45 and run.state.failed == 0 and run.state.bytes_attached == 4500
    rows = report(manifest)
    assert rows[0] == ["line", "source", "object", "jobId", "status", "attachmentId", "error"]
    assert len(rows) == 46 and {r[4] for r in rows[1:]} == {"attached"}
    assert sorted(int(r[0]) for r in rows[1:]) == list(range(2, 47))
    assert rows[1][:5] == ["2", "s3://b/o0/f0.bin", "1000", "job1", "attached"] and rows[1][5] == "job1-0"


def test_a_re_run_after_completion_sends_nothing(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, 30)
    api = FakeStack()
    backfill(manifest, api).run()
    sent = len(api.bodies)

    again = backfill(manifest, api)
    again.run()

    assert sent == 2 and len(api.bodies) == 2 and again.posts == 0
    assert again.state.attached == 30


def test_a_re_run_sends_only_rows_without_a_job_and_follows_the_rest(tmp_path: Path) -> None:
    """As after a kill: the state file holds two jobs (one unfinished) and a line cut short."""
    manifest = manifest_of(tmp_path, 60)
    first = FakeStack()
    first.finish_after_gets = 10**6  # nothing finishes
    run = backfill(manifest, first)
    groups = list(group_rows(run.rows()))
    for group in groups[:2]:
        job = first.post_job(group.body())
        StateFile(state_path(manifest)).append(
            {"sent": job.jobId, "rows": [[r.line, r.source, r.target] for r in group.rows]}
        )
    with state_path(manifest).open("a") as handle:
        handle.write('{"sent": "job3", "rows": [[')  # the kill

    first.finish_after_gets = 0
    resumed = backfill(manifest, first)
    resumed.run()

    assert resumed.posts == 1  # the third group only: 0 rows sent twice
    assert [len(b["files"]) for b in first.bodies] == [20, 20, 20]
    assert resumed.state.attached == 60
    assert all(line.endswith("\n") for line in state_path(manifest).read_text().splitlines(keepends=True))
    assert sorted(r[3] for r in report(manifest)[1:]) == ["job1"] * 20 + ["job2"] * 20 + ["job3"] * 20


def test_a_group_sent_again_after_a_kill_before_its_record_is_the_same_job(tmp_path: Path) -> None:
    """Killed between the 202 and the state line: the re-run forms the same group, and the webhook's idempotency
    answers with the job it already has."""
    manifest = manifest_of(tmp_path, 25)
    api = FakeStack()
    run = backfill(manifest, api)
    api.post_job(next(group_rows(run.rows())).body())  # accepted, never recorded

    run.run()

    assert len(api.jobs) == 2 and report(manifest)[1][3] == "job1"


def test_a_refused_row_is_recorded_and_the_rest_of_its_group_sent(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, 5)
    api = FakeStack(refuse={"s3://b/o0/f2.bin": (404, "key")})

    run = backfill(manifest, api)
    run.run()

    assert [len(b["files"]) for b in api.bodies] == [5, 4]
    rows = {r[0]: r for r in report(manifest)[1:]}
    assert rows["4"][4] == "refused" and "refused s3://b/o0/f2.bin" in rows["4"][6]
    assert {rows[line][4] for line in ("2", "3", "5", "6")} == {"attached"}

    api.refuse.clear()  # the object was uploaded since: a re-run sends just that row
    again = backfill(manifest, api)
    again.run()
    assert again.posts == 1 and api.bodies[-1]["files"] == [{"s3Uri": "s3://b/o0/f2.bin"}]
    assert {r[4] for r in report(manifest)[1:]} == {"attached"}


def test_failed_files_and_bad_rows_are_in_the_report_and_not_attached(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, 3, bad="s3://b/fail.bin,1000\nnot-a-source,1\ns3://b/o0/f0.bin,1000\n")
    api = FakeStack()
    backfill(manifest, api).run()
    prints, _ = scan(manifest)
    total, attached = write_report(report_rows(manifest, prints.repeated(), StateFile(state_path(manifest))), None)
    assert (total, attached) == (6, 3)
    rows = {r[0]: r for r in report(manifest)[1:]}
    assert rows["5"][4] == "failed" and "deleted" in rows["5"][6] and rows["5"][5] == ""
    assert rows["6"][4] == "invalid" and rows["7"][4] == "duplicate" and "line 2" in rows["7"][6]


def test_a_stack_that_is_down_stops_the_run_and_the_state_stays_whole(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, 30)
    api = FakeStack()
    calls = 0
    post = api.post_job

    def failing_second(body: dict[str, object]) -> JobAccepted:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StackApiError("HTTP 503 unavailable", status=503, retryable=True)
        return post(body)

    api.post_job = failing_second  # type: ignore[method-assign]
    with pytest.raises(StackApiError):
        backfill(manifest, api).run()
    api.post_job = post  # type: ignore[method-assign]
    resumed = backfill(manifest, api)
    resumed.run()
    assert resumed.posts == 1 and resumed.state.attached == 30


def test_a_refusal_without_the_webhooks_error_body_stops_the_run(tmp_path: Path) -> None:
    """API Gateway's own 403 (a source outside AllowedSourceCidrs) names no row: nothing is recorded as refused."""
    manifest = manifest_of(tmp_path, 3)
    api = FakeStack()

    def gateway_refuses(body: dict[str, object]) -> JobAccepted:
        raise StackApiError("POST /attachments: HTTP 403: User: anonymous is not authorized", status=403)

    api.post_job = gateway_refuses  # type: ignore[method-assign]
    with pytest.raises(StackApiError):
        backfill(manifest, api).run()
    assert not state_path(manifest).exists()


# ------------------------------------------------------------------------------------------------ API client


class FakeSession(requests.Session):
    """Answers from a list, recording each request; no socket is opened."""

    def __init__(self, answers: list[tuple[int, dict[str, str], Any]]) -> None:
        super().__init__()
        self.answers = answers
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.asked: list[dict[str, str]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((method, url, dict(kwargs.get("headers") or {})))
        self.asked.append(dict(kwargs.get("params") or {}))
        status, headers, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = json.dumps(body).encode()
        return response


TOKEN = "webhook-token-never-shown"


def client(answers: list[tuple[int, dict[str, str], Any]]) -> tuple[StackApi, FakeSession, list[float]]:
    session = FakeSession(answers)
    slept: list[float] = []
    api = StackApi(StackTarget("https://api.example/Prod", SecretStr(TOKEN)), session, sleep=slept.append)
    return api, session, slept


ACCEPTED = {"jobId": "j1", "status": "queued", "statusUrl": "https://api.example/Prod/attachments/jobs/j1"}


def test_429_and_503_are_sent_again_after_retry_after_else_a_growing_jittered_wait() -> None:
    api, session, slept = client(
        [(429, {"Retry-After": "7"}, {"message": "Too Many Requests"}), (503, {}, {}), (503, {}, {}),
         (409, {}, {"error": {"code": "in_progress", "message": "being accepted"}}), (202, {}, ACCEPTED)]
    )  # fmt: skip
    assert api.post_job({"objectId": "1"}).jobId == "j1"
    assert slept[0] == 7.0
    assert 1.4 <= slept[1] <= 2.6 and 2.8 <= slept[2] <= 5.2 and 5.6 <= slept[3] <= 10.4  # the try's number
    assert [s[0] for s in session.sent] == ["POST"] * 5
    assert session.sent[0][1] == "https://api.example/Prod/attachments"
    assert session.sent[0][2]["Authorization"] == f"Bearer {TOKEN}"


def test_a_refusal_carries_the_apis_code_and_field_and_never_the_token() -> None:
    api, _, slept = client([(404, {}, {"error": {"code": "source_not_found", "message": "s3://b/k does not exist",
                                                  "field": "files[3].key"}})])  # fmt: skip
    with pytest.raises(StackApiError) as caught:
        api.post_job({"objectId": "1"})
    assert (caught.value.status, caught.value.api_code, caught.value.field) == (404, "source_not_found", "files[3].key")
    assert not caught.value.retryable and slept == []
    assert TOKEN not in str(caught.value) and "Bearer" not in str(caught.value)

    api, _, slept = client([(503, {}, {})] * 3)
    api._max_tries = 3
    with pytest.raises(StackApiError) as gave_up:
        api.get_job("j1")
    assert gave_up.value.retryable and len(slept) == 2 and TOKEN not in str(gave_up.value)


def test_jobs_are_listed_with_their_filters_and_cursor() -> None:
    view = {"jobId": "j1", "status": "succeeded", "objectId": "1", "files": [], "attempts": 1, "createdAt": "t",
            "updatedAt": "t", "summary": "1 of 1 attached"}  # fmt: skip
    api, session, _ = client([(200, {}, {"jobs": [view], "nextCursor": "abc"})])
    page = api.list_jobs(issueKey="SUP-1", objectId=None, status="succeeded", limit=5, cursor="xyz")
    assert page.nextCursor == "abc" and page.jobs[0].model_dump()["summary"] == "1 of 1 attached"
    assert session.sent[0][1] == "https://api.example/Prod/attachments/jobs"
    assert session.asked == [{"issueKey": "SUP-1", "status": "succeeded", "limit": "5", "cursor": "xyz"}]


def test_the_api_base_comes_from_the_webhook_url_or_the_base() -> None:
    assert api_base("https://x.execute-api.us-east-1.amazonaws.com/Prod/attachments", "u").endswith("/Prod")
    assert api_base("http://127.0.0.1:8080/", "u") == "http://127.0.0.1:8080"
