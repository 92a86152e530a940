"""The diff of a new probe assignment (podmodel.probing) against the probes
already running. Pure: functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from podmodel.probing import ProbeAssignment, ProbeAssignmentSet, ProbeKey


@dataclass(frozen=True, slots=True)
class AssignmentDiff:
    """What to do with the running probes for a new assignment set.

    `added`: start these; `removed`: stop these (their keys); `kept`: same key
    and same probe spec, keep their state and schedule but take the new
    container facts (id, IP, start time, ports); `replaced`: same key, spec
    changed: restart from scratch (stop + start).
    """

    added: list[ProbeAssignment] = field(default_factory=list)
    removed: list[ProbeKey] = field(default_factory=list)
    kept: list[ProbeAssignment] = field(default_factory=list)
    replaced: list[ProbeAssignment] = field(default_factory=list)


def diff_assignment(
    running: Mapping[ProbeKey, ProbeAssignment], desired: ProbeAssignmentSet
) -> AssignmentDiff:
    """Compare the probes running now with a new full set. A key listed twice
    in `desired` keeps its last entry."""
    wanted: dict[ProbeKey, ProbeAssignment] = {a.key: a for a in desired.probes}
    diff = AssignmentDiff()
    for key, assignment in wanted.items():
        current = running.get(key)
        if current is None:
            diff.added.append(assignment)
        elif current.probe == assignment.probe:
            diff.kept.append(assignment)
        else:
            diff.replaced.append(assignment)
    diff.removed.extend(key for key in running if key not in wanted)
    return diff


def epoch_seconds(rfc3339: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time (`Z` or an offset); None stays None,
    and so does text that is not a time (the container counts as not
    running rather than breaking the prober)."""
    if not rfc3339:
        return None
    text = rfc3339.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
