"""``make conformance RECORD=FILE``: does the simulator still answer as the real service did?

FILE is a record written by ``assets-attach doctor --live --record FILE`` against a real site (no values in it:
steps, methods, paths with ids elided, statuses, header names, JSON key/type shapes). This starts the local stack
(moto and the Atlassian simulator, as ``make demo`` does), runs the same live check against it (``--chunked`` if
the record did), and checks the simulator against the record:

- every (step, method, path, status) the real service gave, the simulator gives;
- every field of every reply the real service gave, with its JSON type, is in the simulator's reply to the same
  call (a field only the real service sends is a difference: code tested against the simulator never sees it).

Fields only the simulator sends are listed as notes. Prints the differences; exit 0 only when there are none.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from assets_attach.live_check import RECORD_FORMAT, flatten_shape, run_live_check
from assets_attach.settings import Settings

CallKey = tuple[str, str, str, int]
OBJECT_ID = "1234"
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}


def _key(call: dict[str, Any]) -> CallKey:
    return (str(call["step"]), str(call["method"]), str(call["path"]), int(call["status"]))


def _describe(key: CallKey) -> str:
    step, method, path, status = key
    return f"{step}: {method} {path} -> {status}"


def _reply_fields(calls: Iterable[dict[str, Any]]) -> dict[CallKey, dict[str, set[str]]]:
    """Per call key, every reply field seen and the JSON types it came in."""
    fields: dict[CallKey, dict[str, set[str]]] = {}
    for call in calls:
        seen = fields.setdefault(_key(call), {})
        reply = call.get("replyBody")
        if reply is None:
            continue
        for name, kind in flatten_shape(reply).items():
            seen.setdefault(name, set()).update(kind.split("|"))
    return fields


def compare_records(real: dict[str, Any], simulated: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The differences (what the real service gave and the simulator does not), and notes (simulator-only fields)."""
    real_fields = _reply_fields(real["calls"])
    sim_fields = _reply_fields(simulated["calls"])
    differences: list[str] = []
    notes: list[str] = []
    for key, fields in real_fields.items():
        if key not in sim_fields:
            answered = sorted({k[3] for k in sim_fields if k[:3] == key[:3]})
            how = f"it answered {', '.join(map(str, answered))}" if answered else "it had no such call"
            differences.append(f"{_describe(key)}: the simulator never gave this ({how})")
            continue
        sim = sim_fields[key]
        for name, kinds in sorted(fields.items()):
            if name not in sim:
                differences.append(f"{_describe(key)}: reply field {name} ({'|'.join(sorted(kinds))}) is not sent")
            elif not kinds <= sim[name]:
                differences.append(
                    f"{_describe(key)}: reply field {name} is {'|'.join(sorted(kinds))} from the service, "
                    f"{'|'.join(sorted(sim[name]))} from the simulator"
                )
        notes.extend(f"{_describe(key)}: only the simulator sends {name}" for name in sorted(set(sim) - set(fields)))
    return differences, notes


def load_record(path: Path) -> dict[str, Any]:
    record: Any = json.loads(path.read_text(encoding="utf-8"))
    calls = record.get("calls") if isinstance(record, dict) else None
    if not isinstance(calls, list) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{path} is not a record of `assets-attach doctor --live --record` ({RECORD_FORMAT})")
    return record


def simulated_record(chunked: bool) -> dict[str, Any]:
    """The live check against a fresh local stack, as a record."""
    from devstack.stack import local_stack, patched_environ

    with local_stack({OBJECT_ID: "HW-42"}), patched_environ(QUIET):
        report = run_live_check(Settings.from_env(), OBJECT_ID, chunked=chunked)
        if not report.ok:
            print("note: the live check did not pass against the simulator:", file=sys.stderr)
            print("\n".join(report.lines()), file=sys.stderr)
        return report.record()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make conformance RECORD=FILE", description=__doc__.split("\n\n")[0])
    parser.add_argument("record", type=Path, help="a record written by `assets-attach doctor --live --record FILE`")
    args = parser.parse_args(argv)
    try:
        real = load_record(args.record)
    except (OSError, ValueError) as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    simulated = simulated_record(bool(real.get("chunked")))
    differences, notes = compare_records(real, simulated)
    for note in notes:
        print(f"note  {note}")
    for difference in differences:
        print(f"DIFF  {difference}")
    calls = len({_key(c) for c in real["calls"]})
    if differences:
        print(f"FAIL  the simulator differs from {args.record} in {len(differences)} place(s)")
        return 1
    print(f"ok    the simulator gives all {calls} distinct calls of {args.record} with every reply field")
    return 0


if __name__ == "__main__":
    sys.exit(main())
