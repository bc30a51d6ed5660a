"""assets-attach: upload a file, check a setup, find a workspace id, follow and backfill jobs on a deployed stack.

Same settings as the Lambda functions; status, jobs and backfill talk to the stack's webhook API."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from botocore.exceptions import BotoCoreError

from .. import __version__
from ..atlassian.auth_diagnosis import diagnose_refusal, probe_access
from ..atlassian.routes import tenant_cloud_id
from ..atlassian.url_policy import check_media_base_url, require_secure_url
from ..backfill.dry_run import StackChecker, dry_run
from ..backfill.manifest import BadRow, checked_rows, scan
from ..backfill.prefix import default_manifest, write_prefix_manifest
from ..backfill.progress import Progress
from ..backfill.run import Backfill, Pace, report_rows, write_report
from ..backfill.state import StateFile, state_path
from ..core.attach import UploadProgress
from ..core.ports import FileSource
from ..errors import (
    AtlassianAuthError,
    AtlassianError,
    AttachError,
    ConfigError,
    MediaHostNotAllowedError,
    ObjectNotFoundError,
)
from ..local_source import LocalFile
from ..object_ids import normalize_object_id, normalize_object_key
from ..runtime import Runtime, get_runtime
from ..settings import Settings
from ..sources import parse_s3_uri
from ..stack_api import RemoteJob, StackApi, StackTarget, stack_target


class ProgressLine:
    """Progress of one upload on a terminal: the bytes the media service has (in chunked mode, the chunks it
    acknowledged), at most twice a second."""

    def __init__(self, size: int, out: TextIO) -> None:
        self._size = size
        self._out = out
        self._started = time.monotonic()
        self._shown = 0.0

    def __call__(self, progress: UploadProgress) -> None:
        now = time.monotonic()
        if now - self._shown < 0.5 and progress.bytes_sent < self._size:
            return
        self._shown = now
        sent = progress.bytes_sent
        rate = sent / max(now - self._started, 1e-6) / 2**20
        self._out.write(f"\r{sent / max(self._size, 1):6.1%}  {sent / 2**20:,.1f} MiB  {rate:,.1f} MiB/s")
        self._out.flush()

    def end(self) -> None:
        self._out.write("\n")


def _object_id(runtime: Runtime, object_id: str | None, object_key: str | None) -> str:
    if object_id is not None:
        return normalize_object_id(object_id, runtime.workspace_id, "--object-id")
    return runtime.assets.find_object_id(normalize_object_key(object_key, "--object-key"))


def cmd_upload(args: argparse.Namespace) -> int:
    runtime = get_runtime()
    object_id = _object_id(runtime, args.object_id, args.object_key)
    source: FileSource
    if args.source.startswith("s3://"):
        bucket, key = parse_s3_uri(args.source, "SOURCE")
        source = runtime.s3.head(bucket, key)
    elif args.source.startswith("jira:"):
        found = runtime.jira.attachment(args.source.removeprefix("jira:").strip(), "SOURCE")
        source = runtime.jira.source(found.id, name=found.filename, size=found.size, content_type=found.mime_type)
    else:
        source = LocalFile.open(args.source)
    progress = ProgressLine(source.size, sys.stderr) if sys.stderr.isatty() else None
    try:
        result = runtime.attacher.attach(
            object_id, source, filename=args.filename, comment=args.comment or "", on_progress=progress
        )
    finally:
        if progress is not None:
            progress.end()
    print(json.dumps(result.summary(), ensure_ascii=False))
    return 0


def _fix_hint(error: AttachError) -> str:
    if isinstance(error, ConfigError):
        return "the README's 'Settings' and 'Fill the secret' sections show every setting and the secret's JSON"
    if isinstance(error, AtlassianAuthError):
        return "check the e-mail and API token in the secret, and that this account may use Assets"
    if isinstance(error, ObjectNotFoundError) or (isinstance(error, AtlassianError) and error.status == 404):
        return "check workspaceId (`assets-attach workspace --site https://<site>.atlassian.net`) and the object id"
    if isinstance(error, MediaHostNotAllowedError):
        return "if Atlassian moved its media service, add the host to MEDIA_ALLOWED_HOSTS"
    if isinstance(error, AtlassianError) and error.status is None:
        return "check ASSETS_API_BASE_URL and that this machine reaches it"
    return "see the README's troubleshooting section"


def check_settings(runtime: Runtime) -> str:
    source = runtime.settings.atlassian_secret_id or "the ATLASSIAN_* environment variables"
    return f"API {runtime.settings.assets_api_base_url}, credentials from {source}"


def _unknown_keys(runtime: Runtime) -> str:
    """The secret's keys that are not secret keys, each with the nearest valid one; empty if none."""
    return "; ".join(
        f"unknown key {key[:40]!r}" + (f": did you mean {near}?" if near else "")
        for key, near in runtime.secrets.unknown_keys()
    )


def check_secret(runtime: Runtime) -> str:
    try:
        secret = runtime.secrets.get()
    except ConfigError as e:  # a misspelt key is the likely cause of a missing one
        unknown = _unknown_keys(runtime) if runtime.settings.atlassian_secret_id else ""
        if unknown:
            raise ConfigError(f"{e.message}; {unknown}") from e
        raise
    route = f", every call through the API gateway (cloudId {secret.cloud_id})" if secret.cloud_id else ""
    return secret.email + route


def check_secret_keys(runtime: Runtime) -> str:
    """The secret model ignores unknown keys (parsing stays lenient); a misspelt one is a silent misconfiguration
    (``webhookToken``: every webhook call answers 401), so doctor flags it."""
    unknown = _unknown_keys(runtime)
    if unknown:
        raise ConfigError(f"{unknown} (the key is ignored)")
    return "every key is known"


def check_workspace(runtime: Runtime) -> str:
    secret = runtime.secrets.get()
    if secret.workspace_id:
        how = "from the secret"
    else:
        how = f"discovered from {'the API gateway (cloudId)' if secret.cloud_id else secret.site_url}"
    return f"{runtime.assets.workspace_id(secret)} ({how})"


def check_access(runtime: Runtime) -> str:
    probe_access(runtime.assets)
    return "the API token may query this workspace (AQL)"


def check_object(runtime: Runtime, given_id: str) -> str:
    object_id = normalize_object_id(given_id, runtime.workspace_id, "--object-id")
    credentials = runtime.assets.media_credentials(object_id)
    check_media_base_url(credentials.media_base_url, runtime.settings.media_allowed_hosts)
    return f"upload credentials issued; media service at {credentials.media_base_url}"


def _fix_lines(runtime: Runtime | None, error: AttachError) -> list[str]:
    """The fix for a failed check; a 401 is diagnosed (a scoped token off the API gateway, or a token to rotate)."""
    if runtime is not None and isinstance(error, AtlassianAuthError) and error.status == 401:
        try:
            return diagnose_refusal(runtime.session, runtime.settings.assets_api_base_url, runtime.secrets.get())
        except AttachError:  # the secret cannot be read again: the plain hint
            pass
    return [_fix_hint(error)]


# Checks that later ones do not depend on: a failure is reported and the rest still run.
ADVISORY_CHECKS = frozenset({"secret keys"})


def cmd_live_check(args: argparse.Namespace) -> int:
    """``doctor --live``: every step for real (see live_check); one row per HTTP call, exit 0 only if all matched."""
    from ..live_check import run_live_check

    report = run_live_check(Settings.from_env(), args.object_id, chunked=args.chunked)
    print("\n".join(report.lines()))
    if args.record:
        with Path(args.record).open("w", encoding="utf-8") as out:
            json.dump(report.record(), out, indent=2)
            out.write("\n")
        print(f"      record (redacted) written to {args.record}")
    return 0 if report.ok else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    """Each check in turn, with a fix for the first that fails (later ones depend on it)."""
    if args.live:
        return cmd_live_check(args)
    if args.chunked or args.record:
        print("assets-attach: error: --chunked and --record go with --live", file=sys.stderr)
        return 2
    checks: list[tuple[str, Callable[[Runtime], str]]] = [
        ("settings", check_settings),
        ("secret", check_secret),
        ("secret keys", check_secret_keys),
        ("workspace", check_workspace),
        ("access", check_access),
    ]
    if args.object_id:
        checks.append((f"object {args.object_id}", lambda runtime: check_object(runtime, args.object_id)))
    current, runtime, failed = "settings", None, False
    try:
        runtime = Runtime(Settings.from_env())
        for current, check in checks:
            try:
                print(f"ok    {current}: {check(runtime)}")
            except AttachError as e:
                if current not in ADVISORY_CHECKS:
                    raise
                _print_failure(current, e, _fix_lines(runtime, e))
                failed = True
    except AttachError as e:
        _print_failure(current, e, _fix_lines(runtime, e))
        return 1
    return 1 if failed else 0


def _print_failure(check: str, error: AttachError, fix: list[str]) -> None:
    print(f"FAIL  {check}: {error}\n      fix: " + "\n      ".join(fix))


def cmd_workspace(args: argparse.Namespace) -> int:
    """The site's workspace id, then its cloud id (the line to add to the secret for a scoped API token)."""
    runtime = get_runtime()
    site = require_secure_url(args.site, "--site")
    try:
        cloud_id: str | None = tenant_cloud_id(runtime.session, site)
    except AttachError as e:
        cloud_id = None
        print(f"assets-attach: note: the site's cloud id could not be read ({e})", file=sys.stderr)
    secret = runtime.secrets.for_site(site).model_copy(update={"site_url": site})
    if secret.cloud_id and cloud_id:  # through the gateway, to this site rather than the secret's
        secret = secret.model_copy(update={"cloud_id": cloud_id})
    try:
        workspace_id = runtime.assets.discover_workspace(secret)
    except AtlassianAuthError as e:
        if e.status != 401 or secret.cloud_id or cloud_id is None:
            raise
        # A scoped API token answers 401 on the site and works through the API gateway.
        workspace_id = runtime.assets.discover_workspace(secret.model_copy(update={"cloud_id": cloud_id}))
        print(
            "assets-attach: note: this is a scoped API token (or service account): it works only through the API "
            'gateway; add the "cloudId" line below to the secret',
            file=sys.stderr,
        )
    print(workspace_id)
    if cloud_id:
        print(f'"cloudId": "{cloud_id}"')
    return 0


# -- a deployed stack: status, jobs, backfill ---------------------------------------------------------------

# ``status``'s exit codes: 0 succeeded, 1 failed (or the job cannot be read), 3 still queued or running (2 is
# argparse's usage error).
STATUS_EXIT = {"succeeded": 0, "failed": 1, "queued": 3, "running": 3}
BAD_ROWS_SHOWN = 50


def _target(args: argparse.Namespace) -> StackTarget:
    return stack_target(args.stack, os.environ)


def cmd_status(args: argparse.Namespace) -> int:
    job = StackApi(_target(args)).get_job(args.job_id)
    print(json.dumps(job.model_dump(exclude_none=True), ensure_ascii=False, indent=2))
    return STATUS_EXIT[job.status]


def cmd_retry(args: argparse.Namespace) -> int:
    accepted = StackApi(_target(args)).retry_job(args.job_id)
    print(json.dumps(accepted.model_dump(exclude_none=True), ensure_ascii=False, indent=2))
    return 0


def _job_line(job: RemoteJob) -> str:
    attached = sum(f.status == "attached" for f in job.files)
    failed = sum(f.status == "failed" for f in job.files)
    return (
        f"{job.jobId}  {job.status:<9}  {job.createdAt}  object {job.objectId or job.objectKey}  "
        f"issue {job.issueKey or '-'}  {attached}/{len(job.files)} attached" + (f", {failed} failed" if failed else "")
    )


def cmd_jobs(args: argparse.Namespace) -> int:
    page = StackApi(_target(args)).list_jobs(
        issueKey=args.issue_key,
        objectId=args.object_id,
        bucket=args.bucket,
        key=args.key,
        status=args.status,
        limit=args.limit,
        cursor=args.cursor,
    )
    for job in page.jobs:
        print(json.dumps(job.model_dump(exclude_none=True), ensure_ascii=False) if args.json else _job_line(job))
    if page.nextCursor:
        print(f"more: --cursor {page.nextCursor}", file=sys.stderr)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Parse, then hand over to the backfill package: a dry run, or send, follow and report."""

    stack = _target(args) if args.stack or not args.dry_run else None
    settings = Settings.from_env()
    if stack is not None and stack.secret_id and not settings.atlassian_secret_id:
        settings = dataclasses.replace(settings, atlassian_secret_id=stack.secret_id)
    runtime = Runtime(settings)
    if args.prefix:
        manifest = Path(args.manifest_out) if args.manifest_out else default_manifest(args.prefix)
        written = write_prefix_manifest(
            runtime.s3_client,
            args.prefix,
            args.object_from,
            runtime.workspace_id,
            manifest,
            lambda uri, why: print(f"skipped {uri}: {why}", file=sys.stderr),
        )
        print(f"{written:,} rows from {args.prefix} written to {manifest}", file=sys.stderr)
    else:
        manifest = Path(args.manifest)
    prints, _ = scan(manifest)
    repeated = prints.repeated()
    if args.dry_run:
        return _dry_run(args, runtime, manifest, repeated, stack)

    bad = 0
    for item in checked_rows(manifest, repeated):
        if isinstance(item, BadRow):
            bad += 1
            if bad <= BAD_ROWS_SHOWN:
                print(f"line {item.line}: {item.kind}: {item.reason}", file=sys.stderr)
    if bad > BAD_ROWS_SHOWN:
        print(f"... and {bad - BAD_ROWS_SHOWN:,} more bad rows (--report lists them all)", file=sys.stderr)
    if bad and not args.skip_bad_rows:
        print(f"nothing sent: {bad:,} bad rows; fix them, or send the rest with --skip-bad-rows", file=sys.stderr)
        _report(args, manifest, repeated, StateFile(state_path(manifest)))
        return 1
    return _send(args, manifest, repeated, stack or _target(args), len(prints) - bad)


def _dry_run(
    args: argparse.Namespace, runtime: Runtime, manifest: Path, repeated: set[int], stack: StackTarget | None
) -> int:
    limit = stack.max_file_size if stack and stack.max_file_size else runtime.settings.max_file_size_bytes
    summary = dry_run(
        manifest,
        repeated,
        StackChecker(runtime.s3, runtime.jira, runtime.assets),
        limit,
        lambda line, kind, reason: print(f"line {line}: {kind}: {reason}"),
    )
    print("\n".join(summary.lines()))
    return 1 if summary.errors else 0


def _send(args: argparse.Namespace, manifest: Path, repeated: set[int], stack: StackTarget, rows: int) -> int:

    state_file = StateFile(state_path(manifest))
    progress = Progress(sys.stderr, rows, tty=sys.stderr.isatty())
    run = Backfill(manifest, repeated, StackApi(stack), state_file, progress, Pace(args.rate, args.in_flight))
    try:
        run.run()
    finally:
        print(f"{run.posts:,} requests sent in this run; state in {state_file.path}", file=sys.stderr)
    total, attached = _report(args, manifest, repeated, state_file)
    print(f"{attached:,} of {total:,} rows attached" + (f"; report in {args.report}" if args.report else ""))
    return 0 if attached == total else 1


def _report(args: argparse.Namespace, manifest: Path, repeated: set[int], state_file: StateFile) -> tuple[int, int]:
    return write_report(report_rows(manifest, repeated, state_file), Path(args.report) if args.report else None)


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    return parse


def _add_stack_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help="the deployed stack (its WebhookUrl and secret); else ASSETS_ATTACH_API_URL and ASSETS_ATTACH_TOKEN",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assets-attach", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser("upload", help="attach a file from S3, Jira or a local path to an Assets object")
    upload.add_argument("source", metavar="SOURCE", help="s3://bucket/key, jira:<attachmentId> or a local path")
    target = upload.add_mutually_exclusive_group(required=True)
    target.add_argument("--object-id", help="Assets object id: 1234 or <workspaceId>:1234")
    target.add_argument("--object-key", help="Assets object key such as HW-42 (resolved through AQL)")
    upload.add_argument("--filename", help="name shown in Assets (default: the file's own name)")
    upload.add_argument("--comment", help="attachment comment")
    upload.set_defaults(run=cmd_upload)

    doctor = commands.add_parser("doctor", help="check the settings, the secret and access to Atlassian")
    doctor.add_argument("--object-id", help="also fetch upload credentials for this object")
    doctor.add_argument(
        "--live",
        action="store_true",
        help="attach a small generated file to --object-id for real, one row per HTTP call, then delete it",
    )
    doctor.add_argument("--chunked", action="store_true", help="with --live: also send a 6 MiB file in chunks")
    doctor.add_argument("--record", metavar="FILE", help="with --live: write the exchange, redacted, as JSON")
    doctor.set_defaults(run=cmd_doctor)

    workspace = commands.add_parser("workspace", help="print the Assets workspace id of a Jira site")
    workspace.add_argument("--site", required=True, help="https://<site>.atlassian.net")
    workspace.set_defaults(run=cmd_workspace)

    status = commands.add_parser(
        "status", help="show a job of the deployed stack; exit 0 succeeded, 1 failed, 3 queued or running"
    )
    status.add_argument("job_id", metavar="JOB_ID")
    _add_stack_argument(status)
    status.set_defaults(run=cmd_status)

    retry = commands.add_parser(
        "retry", help="run a failed job of the deployed stack again: its failed pairs only, what it attached stays"
    )
    retry.add_argument("job_id", metavar="JOB_ID")
    _add_stack_argument(retry)
    retry.set_defaults(run=cmd_retry)

    jobs = commands.add_parser("jobs", help="list the deployed stack's jobs, newest first")
    jobs.add_argument("--issue-key", help="jobs of this Jira issue")
    jobs.add_argument("--object-id", help="jobs for this Assets object")
    jobs.add_argument("--bucket", help="jobs with a file from this bucket")
    jobs.add_argument("--key", help="jobs with this S3 key (with --bucket)")
    jobs.add_argument("--status", choices=("queued", "running", "succeeded", "failed"))
    jobs.add_argument("--limit", type=int, help="at most this many jobs")
    jobs.add_argument("--cursor", help="the next page (printed on stderr after a full page)")
    jobs.add_argument("--json", action="store_true", help="one JSON job view per line")
    _add_stack_argument(jobs)
    jobs.set_defaults(run=cmd_jobs)

    backfill = commands.add_parser(
        "backfill", help="attach every row of a manifest (or every file under an S3 prefix) through the stack"
    )
    backfill.add_argument(
        "manifest",
        metavar="MANIFEST",
        nargs="?",
        help="CSV or JSON Lines: source, objectId|objectKey, filename, comment",
    )
    backfill.add_argument("--prefix", metavar="S3_URI", help="s3://bucket/prefix/: the files under it, as S3 drops")
    backfill.add_argument("--object-from", choices=("metadata", "key"), help="with --prefix: where the object is named")
    backfill.add_argument(
        "--manifest-out",
        metavar="FILE",
        help="with --prefix: the manifest written (default: ./<bucket>-<prefix>.jsonl)",
    )
    backfill.add_argument("--dry-run", action="store_true", help="check every row, send nothing")
    backfill.add_argument("--report", metavar="FILE", help="write a CSV: every row's job, status, attachment, error")
    backfill.add_argument("--skip-bad-rows", action="store_true", help="send the good rows when some rows are bad")
    backfill.add_argument("--rate", type=_positive(float), default=2.0, help="most jobs sent a second (default 2)")
    backfill.add_argument(
        "--in-flight", type=_positive(int), default=10, help="most jobs queued or running at once (default 10)"
    )
    _add_stack_argument(backfill)
    backfill.set_defaults(run=cmd_backfill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is cmd_doctor and args.live and not args.object_id:
        parser.error("doctor --live needs --object-id (the object that receives the test attachment)")
    if args.run is cmd_backfill and (args.manifest is None) == (args.prefix is None):
        parser.error("backfill takes a MANIFEST or --prefix s3://bucket/prefix/ (with --object-from), not both")
    if args.run is cmd_backfill and args.prefix and not args.object_from:
        parser.error("backfill --prefix needs --object-from metadata|key")
    try:
        return int(args.run(args))
    except AttachError as e:
        print(f"assets-attach: error: {e}", file=sys.stderr)
        return 1
    except (BotoCoreError, OSError) as e:  # no AWS region or credentials, an unreadable file
        print(f"assets-attach: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
