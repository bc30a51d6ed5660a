"""assets-attach: upload a file, check a setup, find a workspace id. Same settings as the Lambda functions."""

from __future__ import annotations

import argparse
import json
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
