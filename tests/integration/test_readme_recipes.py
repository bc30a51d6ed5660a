"""The README's Jira Automation recipes, as written there, against the local stack.

Each recipe's body is read from the README (the block after ``<!-- recipe: name -->``), its smart values are
rendered as the README says Jira renders them, and it is sent as the rule would send it. A README edit that
breaks a recipe breaks this test.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from assets_attach.runtime import get_runtime
from devstack.lambda_local import LocalWorker
from devstack.stack import LocalStack, patched_environ
from devstack.webhook_client import job_status, post

README = Path(__file__).resolve().parents[2] / "README.md"
# What the recipes' smart values render to for issue SUP-7, whose Assets field holds objects 1234 and 5678.
RENDERED = {
    "{{issue.key}}": "SUP-7",
    "{{issue.customfield_10050.id}}": "sim-workspace:1234, sim-workspace:5678",
    "{{issue.customfield_10050.key}}": "HW-42, HW-43",
}


def recipe(name: str) -> str:
    match = re.search(rf"<!-- recipe: {name} -->\n```\w+\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match, f"the README has no recipe {name}"
    text = match.group(1)
    for smart_value, rendered in RENDERED.items():
        text = text.replace(smart_value, rendered)
    assert "{{" not in text, f"a smart value of recipe {name} is not rendered here: {text}"
    return text


@pytest.fixture
def objects(stack: LocalStack) -> tuple[str, str]:
    stack.sim.add_object("5678", "HW-43")
    return "1234", "5678"


def test_recipe_attachment_added(stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]) -> None:
    body = json.loads(recipe("attachment-added"))
    stack.sim.add_jira_attachment("SUP-7", "Typenschild.png", b"\x89PNG one", "image/png")
    worker.start()
    try:
        first = post(api, stack, body)
        stack.sim.add_jira_attachment("SUP-7", "Lieferschein.pdf", b"%PDF two", "application/pdf")
        second = post(api, stack, body)  # the rule fires again: one more attachment on the issue
    finally:
        worker.stop()

    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    for object_id in objects:
        assert sorted(a.filename for a in stack.sim.attachments(object_id)) == ["Lieferschein.pdf", "Typenschild.png"]
        assert {a.comment for a in stack.sim.attachments(object_id)} == {"From SUP-7"}
    assert len(stack.sim.uploads) == 4  # each (file, object) pair uploaded once, whatever the repeats
    assert {f["status"] for f in second.json()["files"]} == {"attached"}


def test_recipe_transitioned(stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]) -> None:
    body = json.loads(recipe("transitioned"))
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="my-exports")
    s3.put_object(
        Bucket="my-exports", Key="reports/SUP-7/report.pdf", Body=b"%PDF report", ContentType="application/pdf"
    )
    with patched_environ({"ALLOWED_BUCKETS": f"{stack.bucket},my-exports"}):
        get_runtime.cache_clear()
        reply = post(api, stack, body)
    get_runtime.cache_clear()

    assert reply.status_code == 202, reply.text
    worker.drain()
    assert job_status(stack, reply.json()["statusUrl"])["status"] == "succeeded"
    for object_id in objects:
        [attachment] = stack.sim.attachments(object_id)
        assert (attachment.filename, attachment.comment) == ("Report SUP-7.pdf", "Attached by automation from SUP-7")


def test_recipe_s3_drop(stack: LocalStack, worker: LocalWorker, objects: tuple[str, str]) -> None:
    words = shlex.split(recipe("s3-drop").replace("\\\n", " "))
    metadata = json.loads(words[words.index("--metadata") + 1])
    key = words[words.index("cp") + 2].split("/", 3)[3]  # s3://$BUCKET/<key>
    stack.enable_s3_notifications()
    worker.drain()  # S3's test event

    stack.put(key, b"%PDF nightly", "application/pdf", **metadata)
    worker.drain()

    for object_id in objects:
        [attachment] = stack.sim.attachments(object_id)
        assert (attachment.filename, attachment.comment) == ("report.pdf", "Nightly export")
