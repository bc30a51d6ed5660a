"""``assets-attach``: upload a file, check a setup, find a workspace id. Same settings as the Lambda functions."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from botocore.exceptions import BotoCoreError

from ..atlassian.url_policy import check_media_base_url
from ..attach import FileSource, UploadProgress
from ..aws.s3_source import parse_s3_uri
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

DOCTOR_QUERY = 'Key = "DOCTOR-1"'


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


def check_secret(runtime: Runtime) -> str:
    return runtime.secrets.get().email


def check_workspace(runtime: Runtime) -> str:
    secret = runtime.secrets.get()
    how = f"discovered from {secret.site_url}" if not secret.workspace_id else "from the secret"
    return f"{runtime.assets.workspace_id(secret)} ({how})"


def check_access(runtime: Runtime) -> str:
    runtime.assets.aql(DOCTOR_QUERY, 1)
    return "the API token may query this workspace (AQL)"


def check_object(runtime: Runtime, given_id: str) -> str:
    object_id = normalize_object_id(given_id, runtime.workspace_id, "--object-id")
    credentials = runtime.assets.media_credentials(object_id)
    check_media_base_url(credentials.media_base_url, runtime.settings.media_allowed_hosts)
    return f"upload credentials issued; media service at {credentials.media_base_url}"


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
    """Each check in turn, with a fix hint for the first that fails (later ones depend on it)."""
    if args.live:
        return cmd_live_check(args)
    if args.chunked or args.record:
        print("assets-attach: error: --chunked and --record go with --live", file=sys.stderr)
        return 2
    checks: list[tuple[str, Callable[[Runtime], str]]] = [
        ("settings", check_settings),
        ("secret", check_secret),
        ("workspace", check_workspace),
        ("access", check_access),
    ]
    if args.object_id:
        checks.append((f"object {args.object_id}", lambda runtime: check_object(runtime, args.object_id)))
    current = "settings"
    try:
        runtime = Runtime(Settings.from_env())
        for current, check in checks:
            print(f"ok    {current}: {check(runtime)}")
    except AttachError as e:
        print(f"FAIL  {current}: {e}\n      fix: {_fix_hint(e)}")
        return 1
    return 0


def cmd_workspace(args: argparse.Namespace) -> int:
    runtime = get_runtime()
    print(runtime.assets.discover_workspace(args.site, runtime.secrets.for_site(args.site)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assets-attach", description=__doc__)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run is cmd_doctor and args.live and not args.object_id:
        parser.error("doctor --live needs --object-id (the object that receives the test attachment)")
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
