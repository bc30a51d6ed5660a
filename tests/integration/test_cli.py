"""The ``assets-attach`` command as a user runs it: a subprocess against moto and the simulator."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.stack import LocalStack


def run_cli(
    *args: str, env: dict[str, str] | None = None, without: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assets_attach", *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if k not in without},
        timeout=120,
        check=False,
    )


def assert_no_secret(stack: LocalStack, *outputs: str) -> None:
    for text in outputs:
        assert stack.sim.api_token not in text
        assert stack.webhook_token not in text
        assert "Bearer" not in text and "eyJ" not in text  # no Authorization header, no JWT


def test_upload_from_s3_by_key_prints_one_json_line(stack: LocalStack) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key="docs/Größe.txt", Body=b"12345")

    done = run_cli("upload", f"s3://{stack.bucket}/docs/Größe.txt", "--object-key", "HW-42", "--comment", "hi")

    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    summary = json.loads(line)
    assert summary["objectId"] == "1234"
    assert summary["filename"] == "Größe.txt"
    assert summary["size"] == 5
    [attachment] = stack.sim.attachments("1234")
    assert summary["attachmentId"] == str(attachment.id)
    assert summary["mediaId"] == attachment.media_id
    assert attachment.comment == "hi"
    assert_no_secret(stack, done.stdout, done.stderr)


def test_upload_a_jira_attachment(stack: LocalStack) -> None:
    data = b"%PDF-1.7 from Jira"
    attachment_id = stack.sim.add_jira_attachment("SUP-1", "Übergabe.pdf", data, "application/pdf")

    done = run_cli("upload", f"jira:{attachment_id}", "--object-id", "1234")
    missing = run_cli("upload", "jira:99999", "--object-id", "1234")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["filename"], summary["size"], summary["contentType"]) == (
        "Übergabe.pdf",
        len(data),
        "application/pdf",
    )
    [attachment] = stack.sim.attachments("1234")
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert missing.returncode != 0 and "Jira attachment 99999 does not exist" in missing.stderr
    assert_no_secret(stack, done.stdout, done.stderr, missing.stderr)


def test_upload_local_file_with_workspace_prefixed_id(stack: LocalStack, tmp_path: Path) -> None:
    path = tmp_path / "diagram.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    done = run_cli("upload", str(path), "--object-id", f"{stack.sim.workspace_id}:1234", "--filename", "Plan.png")
    assert done.returncode == 0, done.stderr
    [attachment] = stack.sim.attachments("1234")
    assert (attachment.filename, attachment.mime_type, attachment.size) == ("Plan.png", "image/png", 8)


def test_upload_errors_are_one_line_on_stderr(stack: LocalStack) -> None:
    missing = run_cli("upload", f"s3://{stack.bucket}/nope.txt", "--object-id", "1234")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr

    bad_id = run_cli("upload", f"s3://{stack.bucket}/nope.txt", "--object-id", "HW-42")
    assert bad_id.returncode == 1 and "not an Assets object id" in bad_id.stderr

    stack.put_secret(apiToken="wrong")
    stack.client("s3").put_object(Bucket=stack.bucket, Key="a.txt", Body=b"a")
    denied = run_cli("upload", f"s3://{stack.bucket}/a.txt", "--object-id", "1234")
    assert denied.returncode == 1 and "401" in denied.stderr
    assert_no_secret(stack, denied.stderr)
    assert "wrong" not in denied.stderr


def test_doctor_passes_and_then_names_the_fix(stack: LocalStack) -> None:
    ok = run_cli("doctor", "--object-id", "1234")
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.count("ok ") == 6
    assert_no_secret(stack, ok.stdout, ok.stderr)

    stack.put_secret(apiToken="wrong")
    failing = run_cli("doctor")
    assert failing.returncode == 1
    assert "FAIL  access" in failing.stdout and "API token" in failing.stdout
    # Refused on the site and through the API gateway: not a scoped token, a token to rotate.
    assert "expired" in failing.stdout and "apiToken" in failing.stdout and '"cloudId": "' not in failing.stdout

    bad_setting = run_cli("doctor", env={"MAX_FILE_SIZE_BYTES": "1GB"})
    assert bad_setting.returncode == 1 and "FAIL  settings: MAX_FILE_SIZE_BYTES" in bad_setting.stdout

    stack.put_secret(workspaceId="not-this-workspace")
    wrong_workspace = run_cli("doctor")
    assert "FAIL  access" in wrong_workspace.stdout and "workspaceId" in wrong_workspace.stdout

    unset = run_cli("doctor", env={"ATLASSIAN_SECRET_ID": ""})
    assert unset.returncode == 1 and "ATLASSIAN_SECRET_ID" in unset.stdout

    no_region = run_cli(  # and no AWS config file that could name one
        "doctor",
        env={"AWS_CONFIG_FILE": "/nonexistent/config"},
        without=("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"),
    )
    assert no_region.returncode == 1 and no_region.stderr == "", no_region.stderr
    assert "FAIL  secret" in no_region.stdout and "region" in no_region.stdout.lower()


def test_workspace_discovery(stack: LocalStack) -> None:
    """The first line is the workspace id; the second the site's cloud id, as the secret line (KB "Retrieve my
    Atlassian site's Cloud ID": GET {site}/_edge/tenant_info)."""
    done = run_cli("workspace", "--site", stack.sim.base_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [stack.sim.workspace_id, f'"cloudId": "{stack.sim.cloud_id}"']

    from_env = run_cli(
        "workspace",
        "--site",
        stack.sim.base_url,
        env={"ATLASSIAN_SECRET_ID": "", "ATLASSIAN_EMAIL": stack.sim.email, "ATLASSIAN_API_TOKEN": stack.sim.api_token},
    )
    assert from_env.stdout.splitlines()[0] == stack.sim.workspace_id, from_env.stderr


def test_workspace_discovery_with_a_scoped_token_goes_through_the_api_gateway(stack: LocalStack) -> None:
    """A scoped token answers 401 on the site (KB "401 unauthorized error when service account accesses Jira or
    Confluence API"): the workspace is asked of /ex/jira/{cloudId}/ and the note says to add cloudId."""
    stack.sim.scoped_tokens = True
    done = run_cli("workspace", "--site", stack.sim.base_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [stack.sim.workspace_id, f'"cloudId": "{stack.sim.cloud_id}"']
    assert "scoped API token" in done.stderr
    gateway = f"/ex/jira/{stack.sim.cloud_id}/rest/servicedeskapi/assets/workspace"
    assert [r.status for r in stack.sim.requests if r.path == gateway] == [200]
    assert_no_secret(stack, done.stdout, done.stderr)


def test_doctor_diagnoses_a_scoped_token_on_the_site_and_prints_the_cloud_id_line(stack: LocalStack) -> None:
    """Scoped API tokens (service accounts) answer 401 on the site URL and work only through the API gateway
    (KB "401 unauthorized error when service account accesses Jira or Confluence API"); the cloud id comes from
    GET {siteUrl}/_edge/tenant_info without auth (KB "Retrieve my Atlassian site's Cloud ID")."""
    stack.sim.scoped_tokens = True

    scoped = run_cli("doctor")

    assert scoped.returncode == 1
    assert "FAIL  access" in scoped.stdout and "HTTP 401" in scoped.stdout
    assert "this is a scoped API token (or service account): it works only through the API gateway" in scoped.stdout
    assert scoped.stdout.splitlines()[-1].strip() == f'"cloudId": "{stack.sim.cloud_id}"'
    assert [r.headers.get("Authorization") for r in stack.sim.requests if r.path == "/_edge/tenant_info"] == [None]
    assert_no_secret(stack, scoped.stdout, scoped.stderr)

    stack.put_secret(cloudId=stack.sim.cloud_id)
    fixed = run_cli("doctor", "--object-id", "1234")
    assert fixed.returncode == 0, fixed.stdout
    assert fixed.stdout.count("ok ") == 6 and "through the API gateway" in fixed.stdout

    stack.put_secret(cloudId=stack.sim.cloud_id, apiToken="revoked")
    revoked = run_cli("doctor")
    assert revoked.returncode == 1 and "FAIL  access" in revoked.stdout
    assert "expired" in revoked.stdout and "revoked" in revoked.stdout and "apiToken" in revoked.stdout
    assert '"cloudId": "' not in revoked.stdout.splitlines()[-1]


def test_doctor_flags_a_misspelt_secret_key_with_the_nearest_valid_one(stack: LocalStack) -> None:
    """``webhookToken`` (not ``webhookTokens``) parses (the model ignores extras) while every webhook call
    answers 401: doctor says so, and still runs the other checks."""
    value = stack.secret_value()
    value["webhookToken"] = value.pop("webhookTokens")
    stack.client("secretsmanager").put_secret_value(SecretId=stack.secret_id, SecretString=json.dumps(value))

    flagged = run_cli("doctor")

    assert flagged.returncode == 1
    assert "FAIL  secret keys: unknown key 'webhookToken': did you mean webhookTokens?" in flagged.stdout
    assert "ok    access" in flagged.stdout  # not blocking: the later checks ran
    assert_no_secret(stack, flagged.stdout, flagged.stderr)

    value["apitoken"] = value.pop("apiToken")  # a required key misspelt: the secret check says which
    stack.client("secretsmanager").put_secret_value(SecretId=stack.secret_id, SecretString=json.dumps(value))
    missing = run_cli("doctor")
    assert missing.returncode == 1 and "FAIL  secret" in missing.stdout
    assert "unknown key 'apitoken': did you mean apiToken?" in missing.stdout
    assert_no_secret(stack, missing.stdout, missing.stderr)
