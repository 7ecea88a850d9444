"""The audit trail: appended only, chained, and any rewrite found by ``verify``."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from app import audit
from app.access import LOCAL, AccessContext

ANALYST = AccessContext(
    email="a@police.example", agency="Fairhaven Police", role="analyst", visible=(), local=False
)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def fill(path: Path, n: int = 4) -> None:
    for i in range(n):
        audit.record(path, "export", ANALYST, what=f"hexes {i}", filter={"datasets": ["police_crime"]})


def test_entries_carry_who_when_what_and_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    first = audit.record(
        path,
        "download",
        ANALYST,
        what="ward profile",
        filter={"datasets": ["police_crime"], "start": "2024-01-01"},
        files=[audit.bytes_entry("ward.json", b"{}", rows=1)],
    )
    second = audit.record(path, "load", LOCAL, what="catalog.toml")
    assert first["prev"] == audit.GENESIS and first["seq"] == 0
    assert (first["who"], first["agency"], first["role"]) == (
        "a@police.example",
        "Fairhaven Police",
        "analyst",
    )
    assert first["when"].endswith("Z")
    assert first["files"][0]["sha256"] == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    written = lines(path)
    assert json.loads(written[0]) == first
    assert second["prev"] == audit.line_hash(written[0]) and second["seq"] == 1
    assert (second["who"], second["role"]) == ("local", "local")
    verdict = audit.verify(path)
    assert verdict.ok and verdict.entries == 2 and verdict.head == audit.line_hash(written[1])


def test_file_is_not_world_readable(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit.record(path, "load", LOCAL)
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0


def test_an_edited_line_is_found(tmp_path):
    path = tmp_path / "audit.jsonl"
    fill(path)
    text = lines(path)
    text[1] = text[1].replace("a@police.example", "someone@else.example")
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    verdict = audit.verify(path)
    assert not verdict.ok and verdict.problem.startswith("line 3: does not follow line 2")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_deleted_line_is_found(tmp_path, which):
    path = tmp_path / "audit.jsonl"
    fill(path)
    text = lines(path)
    del text[which]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    verdict = audit.verify(path)
    assert not verdict.ok and f"line {which + 1}: does not follow" in verdict.problem


def test_a_cut_off_tail_leaves_a_shorter_head(tmp_path):
    """Cutting the last lines leaves a chain that holds: only the head kept elsewhere shows it."""
    path = tmp_path / "audit.jsonl"
    fill(path)
    head = audit.verify(path).head
    path.write_text("\n".join(lines(path)[:-1]) + "\n", encoding="utf-8")
    verdict = audit.verify(path)
    assert verdict.ok and verdict.entries == 3 and verdict.head != head


def test_a_damaged_line_and_a_half_written_line_are_found(tmp_path):
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 2, "half')
    assert "line 3: incomplete" in audit.verify(path).problem
    # The next entry starts a line of its own after the damage and chains to it; verify still
    # reports the damage.
    path.write_text("\n".join([*lines(path)[:2], "not json"]) + "\n", encoding="utf-8")
    audit.record(path, "load", LOCAL)
    assert audit.verify(path).problem == "line 3: not a JSON object"
    assert list(audit.entries(path))[2] == {"damaged": "not json"}


def test_concurrent_appends_keep_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    threads = [threading.Thread(target=fill, args=(path, 10)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = audit.verify(path)
    assert verdict.ok and verdict.entries == 80


def test_unwritable_trail_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(audit.AuditError, match="cannot be written"):
        audit.record(blocker / "audit.jsonl", "load", LOCAL)


def test_path_from_env_or_beside_the_warehouse(tmp_path):
    assert audit.audit_path(tmp_path / "w.duckdb", {}) == tmp_path / "w.duckdb.audit.jsonl"
    assert audit.audit_path(tmp_path / "w.duckdb", {"COMMON_GROUND_AUDIT": "/x/a.jsonl"}) == Path(
        "/x/a.jsonl"
    )


def test_names_with_newlines_stay_on_one_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit.record(
        path, "download", ANALYST, what="line\nbreak <b>x</b>", files=[audit.file_entry("a\nb", 1, None)]
    )
    assert len(lines(path)) == 1 and audit.verify(path).ok


def test_load_and_exports_are_recorded_and_printed(small_demo, tmp_path, monkeypatch, capsys):
    """``python -m app load`` and ``export`` write entries; ``python -m app audit`` prints them."""
    from app.cli import main

    monkeypatch.delenv("COMMON_GROUND_ACCESS", raising=False)
    monkeypatch.delenv("COMMON_GROUND_AUDIT", raising=False)
    db = tmp_path / "w.duckdb"
    assert main(["load", "--catalog", str(small_demo / "catalog.toml"), "--db", str(db)]) == 0
    out = tmp_path / "wards.csv"
    assert main(["export", "wards", "--db", str(db), "--out", str(out), "--dataset", "fire_incidents"]) == 0
    trail = tmp_path / "w.duckdb.audit.jsonl"
    load, export = list(audit.entries(trail))
    assert load["action"] == "load" and load["what"] == "catalog.toml"
    assert load["datasets"]["early_help"] == "loaded"
    names = {f["name"] for f in load["files"]}
    assert "fire_incidents/fire_incidents.csv" in names
    assert all(len(f["sha256"]) == 64 and f["rows"] > 0 for f in load["files"])
    assert export["action"] == "export" and export["filter"]["datasets"] == ["fire_incidents"]
    assert export["files"][0]["name"] == "wards.csv"
    assert export["files"][0]["sha256"] == audit.sha256_of(out)
    capsys.readouterr()
    assert main(["audit", "--db", str(db), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert " local [local] load catalog.toml" in printed
    assert "file wards.csv:" in printed and "audit trail intact: 2 entries" in printed
    assert main(["audit", "--db", str(db), "--json"]) == 0
    assert [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()] == ["load", "export"]
    # Break the chain: --verify says so and exits 1.
    text = lines(trail)
    trail.write_text(text[1] + "\n", encoding="utf-8")
    assert main(["audit", "--db", str(db), "--verify"]) == 1
    assert "audit trail damaged: line 1" in capsys.readouterr().out


def test_export_is_taken_back_when_the_trail_cannot_be_written(small_demo_db, tmp_path, monkeypatch, capsys):
    from app.cli import main

    db, _ = small_demo_db
    monkeypatch.delenv("COMMON_GROUND_ACCESS", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("COMMON_GROUND_AUDIT", str(blocker / "audit.jsonl"))  # a file is no folder
    out = tmp_path / "h.csv"
    assert main(["export", "hexes", "--db", str(db), "--out", str(out), "--dataset", "fire_incidents"]) == 2
    assert "nothing was exported" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("h.csv.json").exists()
