"""The audit trail: who loaded, viewed, exported or downloaded what, and when.

One file of JSON lines, only ever appended to: it is opened with ``O_APPEND`` (every write lands
at the end, whatever another process wrote meanwhile) under an exclusive lock, and the
application has no code that rewrites or truncates it. Each line carries the SHA-256 of the line
before it (``prev``) and its own position (``seq``), so ``verify`` finds any line that was edited,
inserted or deleted after it was written. A chain is only as good as the last hash kept
somewhere else: whoever can write the file can write a new chain, and cutting lines off the end
leaves a shorter chain that still holds, so ``verify`` prints the head (last hash) to be recorded
outside, and production copies the lines off the machine (syslog, write-once storage). The file
is created with mode 0640.

Path: ``COMMON_GROUND_AUDIT``, else ``<warehouse>.audit.jsonl`` beside the warehouse.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.access import LOCAL, AccessContext

AUDIT_ENV = "COMMON_GROUND_AUDIT"
GENESIS = "0" * 64  # the ``prev`` of the first line
FILE_MODE = 0o640
_lock = threading.Lock()  # threads of one process (dashboard sessions) take turns, too


class AuditError(OSError):
    """The audit trail cannot be written: the action it would record must not go ahead."""


def audit_path(db: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``COMMON_GROUND_AUDIT`` if set, else the file beside the warehouse (or store folder)."""
    value = (os.environ if environ is None else environ).get(AUDIT_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    if db is None:
        raise ValueError(f"no warehouse to put the audit trail beside; set {AUDIT_ENV}")
    db = Path(db)
    return db.with_name(db.name + ".audit.jsonl")


def line_hash(line: bytes | str) -> str:
    """SHA-256 of one line as written, without its newline."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    return hashlib.sha256(data.rstrip(b"\n")).hexdigest()


def file_entry(name: str, rows: int | None, sha256: str | None) -> dict:
    """A file as the audit trail names it: its name (never a server path), rows and digest."""
    return {"name": name, "rows": rows, "sha256": sha256}


def bytes_entry(name: str, data: bytes, rows: int | None = None) -> dict:
    """A downloaded or uploaded file given as bytes."""
    return file_entry(name, rows, hashlib.sha256(data).hexdigest())


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _last_line(fd: int) -> bytes | None:
    """The file's last complete line, read backwards from its end."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    block, end, tail = 4096, size, b""
    while end > 0:
        start = max(0, end - block)
        tail = os.pread(fd, end - start, start) + tail
        end = start
        stripped = tail.rstrip(b"\n")
        if b"\n" in stripped or end == 0:
            return stripped.rpartition(b"\n")[2]
    return None


def record(
    path: str | Path,
    action: str,
    ctx: AccessContext = LOCAL,
    *,
    what: str | None = None,
    filter: Mapping | None = None,
    files: Iterable[Mapping] = (),
    extra: Mapping | None = None,
) -> dict:
    """Append one entry and return it. ``filter`` is ``Filter.describe()``; ``files`` are
    ``file_entry`` dicts. Raises AuditError when the trail cannot be written: callers stop the
    action rather than let it go unrecorded."""
    path = Path(path)
    entry = {
        "seq": 0,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **ctx.describe(),
        "action": action,
        "what": what,
        "filter": dict(filter) if filter is not None else None,
        "files": [dict(f) for f in files],
        **(dict(extra) if extra else {}),
        "prev": GENESIS,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _lock:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last = _last_line(fd)
                if last is not None:
                    entry["prev"] = line_hash(last)
                    entry["seq"] = _seq(last) + 1
                line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
                os.write(fd, line.encode("utf-8") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the lock
    except OSError as exc:
        raise AuditError(f"audit trail {path}: cannot be written ({exc.strerror or exc})") from exc
    return entry


def _seq(line: bytes) -> int:
    try:
        return int(json.loads(line).get("seq", 0))
    except (ValueError, AttributeError):
        return 0  # a damaged last line: the next entry still chains to it; verify reports it


def entries(path: str | Path) -> Iterator[dict]:
    """Every entry, oldest first; a line that is not JSON is given as ``{"damaged": text}``."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield {"damaged": line}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    head: str  # SHA-256 of the last line: keep it elsewhere to detect a cut-off tail
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.entries:,} entries, head {self.head}"
        return f"audit trail damaged: {self.problem}"


def verify(path: str | Path) -> Verdict:
    """Walk the chain; the first line whose ``prev`` or ``seq`` does not follow is reported."""
    path = Path(path)
    if not path.exists():
        return Verdict(True, 0, GENESIS)
    prev, count = GENESIS, 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\n")
            if not raw.endswith(b"\n"):
                return Verdict(False, count, prev, f"line {number}: incomplete (no end of line)")
            try:
                entry = json.loads(line)
            except ValueError:
                return Verdict(False, count, prev, f"line {number}: not a JSON object")
            if not isinstance(entry, dict) or entry.get("prev") != prev:
                return Verdict(
                    False,
                    count,
                    prev,
                    f"line {number}: does not follow line {number - 1} (edited, inserted or removed)",
                )
            if entry.get("seq") != count:
                return Verdict(
                    False, count, prev, f"line {number}: numbered {entry.get('seq')}, expected {count}"
                )
            prev, count = line_hash(line), count + 1
    return Verdict(True, count, prev)


def format_entry(entry: Mapping) -> str:
    """One entry as a line of text for ``python -m app audit``."""
    if "damaged" in entry:
        return f"(damaged line) {entry['damaged']}"
    who = entry.get("who", "?")
    agency = f" ({entry['agency']})" if entry.get("agency") else ""
    role = f" [{entry.get('role')}]" if entry.get("role") else ""
    what = f" {entry['what']}" if entry.get("what") else ""
    files = "".join(
        f"\n    file {f.get('name')}: {f.get('rows') if f.get('rows') is not None else '?'} rows, "
        f"sha256 {f.get('sha256') or '?'}"
        for f in entry.get("files") or ()
    )
    flt = entry.get("filter")
    shown = {k: v for k, v in (flt or {}).items() if v not in (None, [], ())}
    filt = f"\n    filter {json.dumps(shown, ensure_ascii=False)}" if shown else ""
    return f"{entry.get('when', '?')} {who}{agency}{role} {entry.get('action', '?')}{what}{filt}{files}"


def load_files(report: Mapping) -> list[dict]:
    """The files a load read, as the audit trail names them: each loaded dataset's files with
    the rows taken in and their SHA-256 (datasets left unchanged read no file)."""
    out = []
    for d in report.get("datasets", []):
        if d.get("status") not in ("loaded", "failed"):
            continue
        for f in d.get("files") or ():
            if not isinstance(f, Mapping):
                continue
            name = f"{d.get('id')}/{Path(str(f.get('path', '?'))).name}"
            out.append(file_entry(name, f.get("rows_loaded", f.get("rows_read")), f.get("sha256")))
    return out


def record_load(path: str | Path, report: Mapping, catalog: str | Path, ctx: AccessContext = LOCAL) -> dict:
    """One entry for a load: the catalogue's name, each dataset's outcome and the files read."""
    outcome = {d.get("id"): d.get("status") for d in report.get("datasets", [])}
    return record(
        path,
        "load",
        ctx,
        what=Path(catalog).name,
        files=load_files(report),
        extra={"datasets": outcome},
    )


def print_trail(path: str | Path, check: bool = False, as_json: bool = False, out=None) -> int:
    """``python -m app audit``: the entries, oldest first, then (with ``check``) the verdict.
    Exit status 0, or 1 when the chain is broken."""
    import sys

    out = out or sys.stdout
    for entry in entries(path):
        print(json.dumps(entry, ensure_ascii=False) if as_json else format_entry(entry), file=out)
    if not check:
        return 0
    verdict = verify(path)
    if as_json:
        print(json.dumps({"verify": verdict.__dict__}), file=out)
    else:
        print(verdict.describe(), file=out)
    return 0 if verdict.ok else 1
