"""The rules that decide, after an interrupted link, whether an attachment is provably this file's."""

from __future__ import annotations

import pytest

from assets_attach.atlassian.assets_client import Attachment
from assets_attach.core.link_recovery import (
    Recovery,
    candidates,
    decide_recovery,
    marker_before_link,
    size_matches,
)
from assets_attach.job_record import LinkMarker


def att(id_: str, filename: str = "report.pdf", filesize: str | None = "12 B") -> Attachment:
    return Attachment(id=id_, filename=filename, filesize=filesize)


def test_the_marker_is_bounded_whatever_the_object_holds() -> None:
    many = [att(str(i)) for i in range(1, 5001)]
    marker = marker_before_link(many, generation=7)
    assert marker == LinkMarker(afterId=5000, generation=7)
    assert len(marker.model_dump_json()) < 100  # far under DynamoDB's 400 KB item limit
    assert marker_before_link([], 1).afterId == 0
    assert marker_before_link([att("a1")], 1).afterId is None  # ids that are not numbers: no order to rely on


@pytest.mark.parametrize(
    ("reported", "size", "matches"),
    [
        ("12 B", 12, True),
        ("12 B", 13, False),
        ("1.2 MB", 1_258_291, True),  # 1.2 MiB
        ("1.2 MB", 1_200_000, True),  # 1.2 MB (decimal)
        ("1.2 MB", 1_400_000, False),
        ("3.0 kB", 3072, True),
        ("3.0 kB", 2500, False),
        ("1 GB", 1024**3, True),
        ("1,5 MB", 1_572_864, True),
        (None, 99, True),  # nothing to compare: the name decides
        ("about a megabyte", 99, True),
    ],
)
def test_size_matches_the_human_size_assets_reports(reported: str | None, size: int, matches: bool) -> None:
    assert size_matches(reported, size) is matches


def test_candidates_are_new_with_the_same_name_and_size() -> None:
    listed = [att("3"), att("5"), att("6", "other.pdf"), att("7", filesize="9 kB"), att("8")]
    assert candidates(listed, LinkMarker(afterId=4, generation=1), "report.pdf", 12) == ["5", "8"]
    assert candidates(listed, LinkMarker(afterId=None, generation=1), "report.pdf", 12) == ["3", "5", "8"]
    assert candidates(listed, LinkMarker(afterId=8, generation=1), "report.pdf", 12) == []


@pytest.mark.parametrize(
    ("found", "made_by_others", "expected"),
    [
        ([], set(), Recovery("relink")),  # the list proves it absent
        ([], None, Recovery("relink")),  # absent whatever others did
        (["9"], set(), Recovery("adopt", "9")),  # nobody else linked meanwhile
        (["9", "10"], {"10"}, Recovery("adopt", "9")),  # the look-alike is another job's
        (["10"], {"10"}, Recovery("relink")),  # the only look-alike is another job's: ours never landed
        (["9"], None, "ambiguous"),  # another link's outcome is unknown: could be theirs
        (["9", "10"], set(), "ambiguous"),  # two look-alikes, neither accounted for
    ],
)
def test_recovery_adopts_only_what_it_can_prove(
    found: list[str], made_by_others: set[str] | None, expected: Recovery | str
) -> None:
    recovery = decide_recovery(found, made_by_others)
    if expected == "ambiguous":
        assert recovery.action == "ambiguous" and recovery.attachment_id is None and recovery.reason
    else:
        assert recovery == expected
