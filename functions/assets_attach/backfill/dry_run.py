"""``backfill --dry-run``: every row checked as the webhook would, without sending anything.

Sources: S3 HeadObject (exists, readable, within the size limit), Jira attachments through the site's REST API,
each distinct source once. Objects: one AQL query per batch of up to ``AQL_BATCH`` ids or keys, never one per
row (the webhook API has no AQL endpoint, so this uses the CLI's own Atlassian credentials, as ``upload`` does).
Duplicates and malformed rows come from the manifest itself. Rows are checked in batches; nothing holds the
whole manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from ..atlassian.assets_client import AssetsClient
from ..atlassian.jira_client import JiraClient
from ..aws.s3_source import S3Source
from ..errors import AttachError, FileTooLargeError, ObjectNotFoundError, check_size
from .manifest import BadRow, Fingerprints, Row, checked_rows, fingerprint

ROW_BATCH = 200
AQL_BATCH = 50
HEAD_THREADS = 8
SOURCE_CACHE = 10_000  # sources remembered, for a file sent to many objects


class Checker(Protocol):
    """What the dry run asks: a source's size (raising the webhook's errors), and which objects exist."""

    def source_size(self, row: Row) -> int: ...

    def existing(self, targets: list[str]) -> set[str]: ...


@dataclass
class DryRunSummary:
    rows: int = 0
    files: Fingerprints = field(default_factory=Fingerprints)
    objects: Fingerprints = field(default_factory=Fingerprints)
    bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        failing = sum(self.errors.values())
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in self.errors.most_common())
        return [
            f"dry run: {self.rows:,} rows, {self.files.distinct():,} files, {self.bytes / 2**20:,.1f} MiB to upload, "
            f"{self.objects.distinct():,} objects",
            f"{failing:,} rows would fail" + (f": {kinds}" if kinds else ""),
        ]


def dry_run(
    manifest: Path,
    repeated: set[int],
    checker: Checker,
    max_file_size: int,
    on_failure: Callable[[int, str, str], None],
) -> DryRunSummary:
    summary = DryRunSummary()
    sizes: dict[str, int | AttachError] = {}
    known: set[str] = set()
    missing: set[str] = set()

    failures: list[tuple[int, str, str]] = []  # the batch's, told in line order

    def fail(line: int, kind: str, reason: str) -> None:
        summary.errors[kind] += 1
        failures.append((line, kind, reason))

    with ThreadPoolExecutor(HEAD_THREADS) as pool:
        for batch in _batches(checked_rows(manifest, repeated), ROW_BATCH):
            rows = [item for item in batch if isinstance(item, Row)]
            summary.rows += len(batch)
            for bad in (item for item in batch if isinstance(item, BadRow)):
                fail(bad.line, bad.kind, bad.reason)
            if len(sizes) > SOURCE_CACHE:
                sizes.clear()
            new = {row.source: row for row in rows if row.source not in sizes}
            for source, size in zip(new, pool.map(_size_or_error(checker), new.values()), strict=True):
                sizes[source] = size
            unknown = sorted({r.target for r in rows} - known - missing)
            for start in range(0, len(unknown), AQL_BATCH):
                asked = unknown[start : start + AQL_BATCH]
                found = checker.existing(asked)
                known.update(found)
                missing.update(set(asked) - found)
            for row in rows:
                _check(row, sizes[row.source], row.target in missing, max_file_size, summary, fail)
            for failure in sorted(failures):
                on_failure(*failure)
            failures.clear()
    return summary


def _size_or_error(checker: Checker) -> Callable[[Row], int | AttachError]:
    def size(row: Row) -> int | AttachError:
        try:
            return checker.source_size(row)
        except AttachError as e:
            return e

    return size


def _check(
    row: Row,
    size: int | AttachError,
    object_missing: bool,
    max_file_size: int,
    summary: DryRunSummary,
    fail: Callable[[int, str, str], None],
) -> None:
    summary.files.add(fingerprint(row.source))
    summary.objects.add(fingerprint(row.target))
    try:
        if isinstance(size, AttachError):
            raise size
        check_size(size, max_file_size, row.source)
        if object_missing:
            raise ObjectNotFoundError(f"no Assets object {row.target.partition(':')[2]}")
    except (FileTooLargeError, ObjectNotFoundError, AttachError) as e:
        fail(row.line, e.code, str(e))
        return
    summary.bytes += size


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch


class StackChecker:
    """The checks against S3, the Jira site and Assets, with the CLI's own AWS and Atlassian credentials."""

    def __init__(self, s3: S3Source, jira: JiraClient, assets: AssetsClient) -> None:
        self._s3 = s3
        self._jira = jira
        self._assets = assets

    def source_size(self, row: Row) -> int:
        if row.jira_id is not None:
            return self._jira.attachment(row.jira_id, "source").size
        bucket, key = row.bucket_key or ("", "")
        return self._s3.head(bucket, key).size

    def existing(self, targets: list[str]) -> set[str]:
        """One AQL query for the ids and one for the keys (ids are digits, keys ``[A-Za-z0-9_]+-[0-9]+``:
        nothing to escape). ``objectId IN (…)`` and ``Key IN (…)`` are AQL's list form."""
        ids = [t.removeprefix("id:") for t in targets if t.startswith("id:")]
        keys = [t.removeprefix("key:") for t in targets if t.startswith("key:")]
        found: set[str] = set()
        if ids:
            values = self._assets.aql(f"objectId IN ({', '.join(ids)})", max_results=len(ids))
            found |= {f"id:{v.get('id')}" for v in values}
        if keys:
            values = self._assets.aql("Key IN (" + ", ".join(f'"{k}"' for k in keys) + ")", max_results=len(keys))
            found |= {f"key:{v.get('objectKey')}" for v in values}
        return found
