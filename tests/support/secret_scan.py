"""A suite-wide scan for passwords in everything a DAG run leaves behind.

Every test cluster's API store reports each Secret it holds (`remember_secrets`, a store
listener), so passwords the package generates are known as well as the connection's
`PASSWORD`. `dag.test()` runs tasks in-process and their logs go to stdout, not to files,
so each test's captured output (`write_test_output`) and every stdlib log record
(`LogTap`, whatever the logging configuration by then) are written to files under AIRFLOW_HOME/logs. At
session end `scan` looks for each secret, raw and as JSON would escape it, in XCom values,
rendered template fields (what the UI shows) and every log file, and
returns where it found one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from pathlib import Path
from typing import Any, Iterable

SECRET_KEYS = ("password", "id_rsa", "ssh_host_rsa_key")
MIN_SECRET_CHARS = 8  # shorter values ("on", a port) would match everything

_known: set[str] = set()
_lock = threading.Lock()


def known_secrets() -> set[str]:
    with _lock:
        return set(_known)


def remember(*values: str) -> None:
    with _lock:
        _known.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS)


def _decoded(value: Any) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError, TypeError):
        return None


def _fragments(value: str) -> list[str]:
    """A password whole; a private key by its body lines (a leaked key is rarely leaked whole)."""
    if "PRIVATE KEY" not in value:
        return [value]
    return [line for line in value.splitlines() if line and "PRIVATE KEY" not in line][:3]


def remember_secrets(event_type: str, obj: dict) -> None:
    """Store listener: note the secret values of every Secret written to a test cluster."""
    if obj.get("kind") != "Secret" or event_type == "DELETED":
        return
    values = {key: _decoded(value) for key, value in (obj.get("data") or {}).items()}
    values.update(obj.get("stringData") or {})
    for key, value in values.items():
        if key in SECRET_KEYS and isinstance(value, str):
            remember(*_fragments(value))


class LogTap:
    """Writes every stdlib log record created in the session to one file under AIRFLOW_HOME/logs.

    A log record factory, not a handler on the root logger: starting Airflow's API server (the
    UI tests) configures logging with `dictConfig`, which closes and detaches every handler, and
    a handler tap went silent there, a fifth of the way into the suite, for the rest of it. The
    record factory is left alone by `dictConfig` and sees every record any logger creates,
    whatever handlers, levels or `propagate` the loggers have by then.
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8", errors="backslashreplace")
        self._write_lock = threading.Lock()
        self._formatter = logging.Formatter()
        self._previous = logging.getLogRecordFactory()

    def install(self) -> "LogTap":
        self._previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._make_record)
        return self

    def _make_record(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._previous(*args, **kwargs)
        try:
            line = f"{record.name} {record.levelname} {record.getMessage()}"
        except Exception:  # noqa: BLE001 - a bad format string is the caller's to find; keep its parts
            line = f"{record.name} {record.levelname} {record.msg!r} {record.args!r}"
        if record.exc_info:
            line += "\n" + self._formatter.formatException(record.exc_info)
        with self._write_lock:
            if not self._file.closed:
                self._file.write(line + "\n")
        return record

    def close(self) -> None:
        if logging.getLogRecordFactory() == self._make_record:
            logging.setLogRecordFactory(self._previous)
        with self._write_lock:
            self._file.close()


def _forms(secret: str) -> set[str]:
    """The secret as it would appear in text: raw, JSON-escaped, repr-escaped."""
    return {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]}


def find_in_text(text: str, secrets: Iterable[str]) -> bool:
    return any(form in text for secret in secrets for form in _forms(secret))


def scan_rows(rows: Iterable[tuple[str, Any]], secrets: set[str]) -> list[str]:
    """(where, value) pairs whose value, as JSON text, holds a secret: their `where`s."""
    found = []
    for where, value in rows:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if find_in_text(text, secrets):
            found.append(where)
    return found


TEST_HEADER = "#### test "


def write_test_output(path: Path, nodeid: str, when: str, sections: Iterable[tuple[str, str]]) -> None:
    """Append what one test phase printed (task logs of `dag.test()` runs go to stdout)."""
    text = "".join(f"{TEST_HEADER}{nodeid} {when} {title}\n{content}\n" for title, content in sections if content)
    if text:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", errors="backslashreplace") as out:
            out.write(text)


def scan_log_files(log_dir: Path, secrets: set[str]) -> list[str]:
    """`log path:line` of each line holding a secret, with the test that printed it when known."""
    found = []
    for path in sorted(p for p in log_dir.rglob("*") if p.is_file()):
        test = ""
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if line.startswith(TEST_HEADER):
                    test = " (" + line[len(TEST_HEADER):].strip() + ")"
                elif find_in_text(line, secrets):
                    found.append(f"log {path}:{number}{test}")
    return found


def metadata_rows() -> list[tuple[str, Any]]:
    """XCom values and rendered template fields of every run in the metadata DB (a run's conf is input)."""
    from sqlalchemy import inspect, text

    from airflow.settings import engine

    tables = set(inspect(engine).get_table_names())
    queries = {
        "xcom": "SELECT dag_id, run_id, task_id, key, value FROM xcom",
        "rendered_task_instance_fields": "SELECT dag_id, run_id, task_id, map_index, rendered_fields "
                                         "FROM rendered_task_instance_fields",
    }
    rows = []
    with engine.connect() as connection:
        for table, query in queries.items():
            if table in tables:
                rows += [(f"{table} dag={r[0]} run={r[1]} task={r[2]} {r[3]}", r[4])
                         for r in connection.execute(text(query))]
    return rows


def scan(airflow_home: Path, secrets: set[str]) -> list[str]:
    """Every place under `airflow_home` and in the metadata DB that holds one of `secrets`."""
    if not secrets:
        return []
    return scan_rows(metadata_rows(), secrets) + scan_log_files(airflow_home / "logs", secrets)
