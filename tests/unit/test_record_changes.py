"""The typed changes of a job record: a change writes the fields it names, None as an explicit null, and
refuses a field a record does not have (a misspelling fails where it is written, not silently on read)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from assets_attach.job_record import ChunkedUpload, FileChange, JobChange, LinkMarker


def test_a_misspelt_field_is_refused_when_the_change_is_made() -> None:
    with pytest.raises(ValidationError, match="attachmentID"):
        FileChange(attachmentID="7")  # type: ignore[call-arg]  # mypy refuses it too (an unused ignore would fail)
    from_elsewhere: dict[str, Any] = {"attempt": 2}
    with pytest.raises(ValidationError, match="attempt"):
        JobChange(**from_elsewhere)


def test_a_change_writes_only_the_fields_it_names_and_none_as_a_null() -> None:
    assert FileChange(status="uploading", waitingFor=None).fields() == {"status": "uploading", "waitingFor": None}
    assert JobChange(status="succeeded", error=None).fields() == {"status": "succeeded", "error": None}
    assert FileChange().fields() == {}


def test_nested_states_are_written_as_maps_with_every_field() -> None:
    chunked = ChunkedUpload(uploadId="u", chunkSize=4, appended=2)
    change = FileChange(bytesSent=8, chunkedUpload=chunked, linkMarker=LinkMarker(afterId=None, generation=3))
    assert change.fields() == {
        "bytesSent": 8,
        "chunkedUpload": {"uploadId": "u", "chunkSize": 4, "appended": 2, "sent": None, "appendingTo": None},
        "linkMarker": {"afterId": None, "generation": 3},
    }


def test_a_status_is_never_cleared() -> None:
    with pytest.raises(ValidationError, match="never clear"):
        FileChange(status=None)
    with pytest.raises(ValidationError, match="never clear"):
        JobChange(status=None)
