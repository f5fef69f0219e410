"""The note a run carries in the UI (Grid view, run details): dry run, or what failed and what to do."""

from __future__ import annotations

from antdb_k8s.core.failures import first_lines

NOTE_LIMIT = 1000
OUR_PREFIXES = ("DRY RUN", "Failed", "AntDB topology")  # a note starting otherwise is a person's: never replaced


def drift_from_reports(reports: list) -> list[str]:
    """The drift of every unclean verification report; prefixed by namespace when there are several clusters."""
    reports = [r for r in reports if isinstance(r, dict)]
    several = len(reports) > 1
    return [f"{r.get('namespace')}: {line}" if several else line
            for r in reports if not r.get("clean") for line in r.get("drift") or []]


def drift_line(run_id: str, reason: str, drift: list[str]) -> str:
    """The verification notifier's line, the same in the task log and in the run note."""
    if drift:
        return f"AntDB topology drift (run {run_id}, {reason}): {len(drift)} finding(s): " + "; ".join(drift)
    return f"AntDB topology verification failed (run {run_id}, {reason}); see the task logs"


def run_note(*, state: str, dry_run: bool, failures: list[dict], drift_note: str | None = None) -> str | None:
    """The note for a run in `state`, or None when there is nothing worth saying."""
    parts = []
    if dry_run:
        parts.append("DRY RUN: nothing was changed; the task logs show every manifest and the SQL a real run "
                     "would apply.")
    if state == "failed":
        if drift_note:
            parts.append(drift_note)
        elif failures:
            first = failures[0]
            more = f" ({len(failures) - 1} more task(s) failed)" if len(failures) > 1 else ""
            parts.append(f"Failed in {first['task']}: {first['message']}{more}")
        else:
            parts.append("Failed: see the failed task's log.")
    if not parts:
        return None
    return first_lines(" ".join(parts), NOTE_LIMIT)


def may_replace(note: str | None) -> bool:
    return not note or note.startswith(OUR_PREFIXES)
