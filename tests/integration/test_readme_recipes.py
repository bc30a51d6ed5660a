"""The README's Jira Automation recipes, as written there, against the local stack.

Each recipe's body is read from the README (the block after ``<!-- recipe: name -->``), its smart values are
rendered as Jira renders them (lists joined with ", ", ``.jsonEncode`` text escaped for JSON, a ``"`` in it), and
the text is sent as the rule sends it: the raw rendered body, not re-encoded here. The README's outcome text
(``<!-- outcome: files -->``) is rendered against each answer. A README edit that breaks a recipe breaks this test.
"""

from __future__ import annotations

import json
import shlex

import pytest

from assets_attach.runtime import get_runtime
from devstack.lambda_local import LocalWorker
from devstack.recipes import block, recipe, render_outcome, rendered_values
from devstack.stack import LocalStack, patched_environ
from devstack.webhook_client import job_status, post

ISSUE = "SUP-7"
SUMMARY = 'Pump "P-7" replaced, 50\\60 Hz'  # a quote and a backslash: what breaks a body without .jsonEncode


@pytest.fixture
def objects(stack: LocalStack) -> tuple[str, str]:
    stack.sim.add_object("5678", "HW-43")
    return "1234", "5678"


def rendered(name: str, attachment_ids: list[str] | None = None) -> str:
    values = rendered_values(ISSUE, SUMMARY, ["1234", "5678"], attachment_ids or [])
    return recipe(name, values)


def outcome_lines(body: dict[str, object]) -> list[str]:
    return [line.strip() for line in render_outcome(block("outcome: files"), body).splitlines() if line.strip()]


def test_smart_values_render_as_jira_renders_them() -> None:
    values = rendered_values(ISSUE, SUMMARY, ["1234", "5678"], ["10000", "10001"])
    assert values["{{issue.customfield_10050.objectId}}"] == "1234, 5678"
    assert values["{{issue.attachment.id}}"] == "10000, 10001"
    assert json.loads(f'"{values["{{issue.summary.jsonEncode}}"]}"') == SUMMARY
    # The README leads with .objectId, and no recipe names .key, which an Assets field's value does not have.
    for name in ("attachment-added", "manual-copy", "transitioned"):
        assert "customfield_10050.objectId" in block(f"recipe: {name}")
        assert ".key}}" not in block(f"recipe: {name}").replace("{{issue.key}}", "")


def test_recipe_attachment_added(stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]) -> None:
    text = rendered("attachment-added")
    stack.sim.add_jira_attachment(ISSUE, "Typenschild.png", b"\x89PNG one", "image/png")
    worker.start()
    try:
        first = post(api, stack, None, raw=text)
        stack.sim.add_jira_attachment(ISSUE, "Lieferschein.pdf", b"%PDF two", "application/pdf")
        second = post(api, stack, None, raw=text)  # the rule fires again: one more attachment on the issue
    finally:
        worker.stop()

    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    for object_id in objects:
        assert sorted(a.filename for a in stack.sim.attachments(object_id)) == ["Lieferschein.pdf", "Typenschild.png"]
        assert {a.comment for a in stack.sim.attachments(object_id)} == {f"From {ISSUE}"}
    assert len(stack.sim.uploads) == 4  # each (file, object) pair uploaded once, whatever the repeats
    assert {f["status"] for f in second.json()["files"]} == {"attached"}
    assert outcome_lines(first.json()) == ["2 of 2 attached.", "Typenschild.png: attached", "Typenschild.png: attached"]


def test_recipe_manual_copy(stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]) -> None:
    ids = [
        stack.sim.add_jira_attachment(ISSUE, "Typenschild.png", b"\x89PNG one", "image/png"),
        stack.sim.add_jira_attachment(ISSUE, "Lieferschein.pdf", b"%PDF two", "application/pdf"),
    ]
    text = rendered("manual-copy", ids)
    assert '"jiraAttachments": "10000, 10001"' in text and '\\"P-7\\"' in text  # as Jira renders them
    worker.start()
    try:
        reply = post(api, stack, None, raw=text)
    finally:
        worker.stop()

    assert reply.status_code == 200, reply.text
    for object_id in objects:
        assert sorted(a.filename for a in stack.sim.attachments(object_id)) == ["Lieferschein.pdf", "Typenschild.png"]
        assert {a.comment for a in stack.sim.attachments(object_id)} == {SUMMARY}
    lines = outcome_lines(reply.json())
    assert lines[0] == "4 of 4 attached."
    assert sorted(lines[1:]) == ["Lieferschein.pdf: attached"] * 2 + ["Typenschild.png: attached"] * 2


def test_recipe_outcome_of_a_failed_job_and_a_refusal(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    """What the failure branches print: the summary and each file's error (422), the error's message (4xx).
    Object 5678 does not exist here."""
    ids = [stack.sim.add_jira_attachment(ISSUE, "Typenschild.png", b"\x89PNG one", "image/png")]
    worker.start()
    try:
        failed = post(api, stack, None, raw=rendered("manual-copy", ids))
    finally:
        worker.stop()
    assert failed.status_code == 422, failed.text
    lines = outcome_lines(failed.json())
    assert lines[0].startswith("1 of 2 attached; ") and lines[0].endswith("."), lines
    assert "Typenschild.png: attached" in lines
    assert any(
        line.startswith("Typenschild.png: failed ") and len(line) > len("Typenschild.png: failed ") for line in lines
    )

    refused = post(api, stack, None, raw=rendered("attachment-added").replace('"all"', '"99999"'))
    assert refused.status_code == 404, refused.text
    message = refused.json()["error"]["message"]
    assert message.endswith(".") and "{" not in message  # one sentence, printed as it is


def test_recipe_transitioned(stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]) -> None:
    text = rendered("transitioned")
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="my-exports")
    s3.put_object(
        Bucket="my-exports", Key=f"reports/{ISSUE}/report.pdf", Body=b"%PDF report", ContentType="application/pdf"
    )
    with patched_environ({"ALLOWED_BUCKETS": f"{stack.bucket},my-exports"}):
        get_runtime.cache_clear()
        reply = post(api, stack, None, raw=text)
    get_runtime.cache_clear()

    assert reply.status_code == 202, reply.text
    worker.drain()
    job = job_status(stack, reply.json()["statusUrl"])
    assert (job["status"], job["summary"]) == ("succeeded", "2 of 2 attached.")
    for object_id in objects:
        [attachment] = stack.sim.attachments(object_id)
        assert (attachment.filename, attachment.comment) == (f"Report {ISSUE}.pdf", f"{ISSUE}: {SUMMARY}")


def test_recipe_s3_drop(stack: LocalStack, worker: LocalWorker, objects: tuple[str, str]) -> None:
    words = shlex.split(recipe("s3-drop", {}).replace("\\\n", " "))
    metadata = json.loads(words[words.index("--metadata") + 1])
    key = words[words.index("cp") + 2].split("/", 3)[3]  # s3://$BUCKET/<key>
    stack.enable_s3_notifications()
    worker.drain()  # S3's test event

    stack.put(key, b"%PDF nightly", "application/pdf", **metadata)
    worker.drain()

    for object_id in objects:
        [attachment] = stack.sim.attachments(object_id)
        assert (attachment.filename, attachment.comment) == ("report.pdf", "Nightly export")
