"""The one rule for addressing the S3 content a job accepted: its version where there is one, else its ETag."""

from __future__ import annotations


def real_version(version_id: str | None) -> str | None:
    """S3 reports ``"null"`` as the version of objects in unversioned buckets."""
    return version_id if version_id and version_id != "null" else None


def pin_for(version_id: str | None, etag: str | None) -> dict[str, str]:
    """GetObject/HeadObject arguments that address exactly the accepted content."""
    if real_version(version_id):
        return {"VersionId": str(version_id)}
    if etag:
        return {"IfMatch": etag if etag.startswith('"') else f'"{etag}"'}
    return {}
