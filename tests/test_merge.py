"""get_s3_files.py --merge: the user's columns stay theirs, bad files are warnings, types are kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import boto3

from burst.protocol import results_prefix, status_key
from burst.results.merge import BURST_COLUMNS, merge
from burst.storage import Storage, open_storage
from tests.conftest import REPO, run_script
from tests.motoserver import moto_server  # noqa: F401  (fixture)

GET_FILES = str(REPO / "get_s3_files.py")


def put_row(storage: Storage, scratch: Path, tag: str, files: dict[str, bytes], attempt: int = 1, **status) -> None:
    """A finished row in the bucket: its ``status.json`` and result files of ``attempt``."""
    record = {"job": "mj", "tag": tag, "state": "done", "instance_type": "t3.micro", "attempt": attempt,
              "exit_code": 0, "seconds": 1.25, "cpus": [1], "provenance": {"host": "node-a", "cpu_count": 2},
              **status}
    storage.write_text(status_key(tag), json.dumps(record))
    for name, data in files.items():
        local = scratch / f"{tag}-{attempt}-{name.replace('/', '_')}"
        local.write_bytes(data)
        storage.upload_file(local, f"{results_prefix(tag, attempt)}{name}")


def local_bucket(tmp_path: Path) -> Storage:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return open_storage((tmp_path / "bucket").as_uri())


def merged_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def fetch_and_merge(source: str, out: Path):
    result = run_script(GET_FILES, source, str(out), "--merge")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result, *merged_rows(out / "results.csv")


def test_a_result_csv_with_seconds_state_and_host_keeps_them_and_burst_gives_way(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="merge-own")
    storage = open_storage("s3://merge-own")
    (tmp_path / "scratch").mkdir()
    put_row(storage, tmp_path / "scratch", "own0", {"r.csv": b"seconds,state,host,tag\n9.5,warm,gpu-7,mine\n"})
    put_row(storage, tmp_path / "scratch", "own1", {"r.csv": b"score\n3\n"}, seconds=2.5)

    _, header, rows = fetch_and_merge("s3://merge-own", tmp_path / "out")
    by_tag = {row["burst_tag"]: row for row in rows}
    assert header[:4] == ["job", "burst_tag", "instance_type", "exit_code"]
    assert (by_tag["own0"]["seconds"], by_tag["own0"]["state"], by_tag["own0"]["host"], by_tag["own0"]["tag"]) == (
        "9.5", "warm", "gpu-7", "mine"), "the user's values, under the user's names"
    assert (by_tag["own0"]["burst_seconds"], by_tag["own0"]["burst_state"], by_tag["own0"]["burst_host"]) == (
        "1.25", "done", "node-a")
    assert by_tag["own1"]["seconds"] == "" and by_tag["own1"]["burst_seconds"] == "2.5", \
        "one name means one thing in every row, also where a CSV lacks the column"
    assert "result_seconds" not in header and header.count("seconds") == 1


def test_burst_columns_have_their_fixed_names_and_order_when_nothing_clashes(tmp_path):
    storage = local_bucket(tmp_path)
    put_row(storage, tmp_path / "scratch", "fx0", {"r.csv": b"value\n7\n"})
    _, header, rows = fetch_and_merge(storage.url, tmp_path / "out")
    assert header == [*BURST_COLUMNS, "value"]
    assert header[:8] == ["job", "tag", "instance_type", "exit_code", "command", "attempt", "csv_line", "note"]
    assert {"lifecycle", "price_per_hour", "cost_usd", "result_file"} <= set(header)
    assert rows[0]["value"] == "7" and rows[0]["cpus"] == "1" and rows[0]["result_file"] == "r.csv"


def test_empty_binary_and_badly_encoded_csvs_are_one_warning_each_and_integers_stay_integers(tmp_path):
    storage = local_bucket(tmp_path)
    scratch = tmp_path / "scratch"
    put_row(storage, scratch, "bad0", {"r.csv": b"n,ratio\n100000,0.5\n"})
    put_row(storage, scratch, "bad1", {"r.csv": b""}, state="failed", exit_code=2)
    put_row(storage, scratch, "bad2", {"r.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01", "ok.csv": b"n\n7\n"})
    put_row(storage, scratch, "bad3", {"r.csv": "n,label\n5,caf\u00e9\n".encode("latin-1")})
    put_row(storage, scratch, "bad4", {"r.csv": b"n,ratio\n123456789012,1.5\n"})

    result, header, rows = fetch_and_merge(storage.url, tmp_path / "out")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    for tag in ("bad1", "bad2", "bad3"):
        named = [w for w in warnings if f"{tag}/attempts/1/results/r.csv" in w]
        assert len(named) == 1, (tag, result.stderr)
    assert len(warnings) == 3, result.stderr
    assert "empty" in result.stderr and "binary" in result.stderr and "UTF-8" in result.stderr

    by_tag: dict[str, list[dict]] = {}
    for row in rows:
        by_tag.setdefault(row["tag"], []).append(row)
    assert sorted(by_tag) == ["bad0", "bad1", "bad2", "bad3", "bad4"], "every tag keeps its row"
    assert by_tag["bad1"][0]["exit_code"] == "2" and by_tag["bad1"][0]["n"] == ""
    assert [r["n"] for r in by_tag["bad0"] + by_tag["bad2"] + by_tag["bad4"]] == ["100000", "7", "123456789012"]
    assert by_tag["bad2"][0]["result_file"] == "ok.csv"

    table = merge(tmp_path / "out").table
    assert str(table["n"].dtype) == "Int64" and str(table["exit_code"].dtype) == "Int64"
    assert str(table["ratio"].dtype) == "Float64"


def test_several_csvs_of_a_tag_are_rows_named_by_result_file(tmp_path):
    storage = local_bucket(tmp_path)
    put_row(storage, tmp_path / "scratch", "many0", {"a/x.csv": b"k,v\n1,10\n2,20\n", "b.csv": b"k,w\n3,x\n",
                                                     "notes.txt": b"not a table\n"})
    _, header, rows = fetch_and_merge(storage.url, tmp_path / "out")
    assert [(r["result_file"], r["k"], r["v"], r["w"]) for r in rows] == [
        ("a/x.csv", "1", "10", ""), ("a/x.csv", "2", "20", ""), ("b.csv", "3", "", "x")]
    assert {r["tag"] for r in rows} == {"many0"}


def test_merge_reads_only_the_current_attempt_and_takes_the_csv_line_from_the_campaign(tmp_path):
    storage = local_bucket(tmp_path)
    scratch = tmp_path / "scratch"
    put_row(storage, scratch, "cur0", {"r.csv": b"value\nfirst-attempt\n"}, attempt=1)
    put_row(storage, scratch, "cur0", {"r.csv": b"value\nsecond-attempt\n"}, attempt=2, command="", note="retried")
    campaign = {"job": "mj", "jobs": [{"tag": "cur0", "instance_type": "t3.micro", "command": "./run --x 1", "line": 4}]}
    storage.write_text("campaign.json", json.dumps(campaign))

    _, _, rows = fetch_and_merge(storage.url, tmp_path / "out")
    assert [(r["value"], r["attempt"], r["csv_line"], r["command"], r["note"]) for r in rows] == [
        ("second-attempt", "2", "4", "./run --x 1", "retried")]


def test_odd_or_unreadable_statuses_do_not_stop_the_merge(tmp_path):
    storage = local_bucket(tmp_path)
    scratch = tmp_path / "scratch"
    put_row(storage, scratch, "odd0", {"r.csv": b"v\n1\n"}, cpus=None, provenance={"cpu_count": "many"}, exit_code="x")
    put_row(storage, scratch, "odd1", {"r.csv": b"v\n2\n"})
    storage.write_text(status_key("odd2"), "{not json")

    result, header, rows = fetch_and_merge(storage.url, tmp_path / "out")
    by_tag = {row["tag"]: row for row in rows}
    assert sorted(by_tag) == ["odd0", "odd1", "odd2"]
    assert (by_tag["odd0"]["v"], by_tag["odd0"]["cpu_count"], by_tag["odd0"]["exit_code"]) == ("1", "many", "x")
    assert by_tag["odd1"]["v"] == "2" and by_tag["odd1"]["exit_code"] == "0"
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        line for line in result.stderr.splitlines() if "odd2.json" in line]
    assert len(result.stderr.strip().splitlines()) == 1


def test_merged_rows_keep_the_job_files_order_not_the_tags_text(tmp_path):
    storage = local_bucket(tmp_path)
    scratch = tmp_path / "scratch"
    tags = [f"solver{i}" for i in range(12)]
    for tag in tags:
        put_row(storage, scratch, tag, {"r.csv": f"value\n{tag}\n".encode()})
    put_row(storage, scratch, "stray3", {"r.csv": b"value\nstray3\n"})  # a row the campaign no longer has: last
    campaign = {"job": "solver", "jobs": [{"tag": t, "instance_type": "t3.micro", "command": "true", "line": i + 2}
                                          for i, t in enumerate(tags)]}
    storage.write_text("campaign.json", json.dumps(campaign))
    _, _, rows = fetch_and_merge(storage.url, tmp_path / "out")
    assert [r["value"] for r in rows] == tags + ["stray3"]


def test_many_rows_each_keep_their_own_values_beside_their_facts_and_values_stay_as_written(tmp_path):
    """Result CSVs sharing a header are parsed together (burst.results.merge._Groups): each row's values
    stay beside its own facts however its files mix headers, lone bad files and rows without a CSV, and a
    column that is numbers in one file and text in another keeps every value as the file wrote it."""
    storage = local_bucket(tmp_path)
    scratch = tmp_path / "scratch"
    expected: list[tuple[str, str, str]] = []  # (tag, result_file, me) of each merged row, in order
    for n in range(60):
        tag = f"mix{n}"
        files: dict[str, bytes] = {}
        if n % 5 != 4:  # every fifth row leaves no CSV: one row of facts
            files["a.csv"] = f"me,value\n{tag},{n}\n{tag},{n}.5\n".encode()
            expected += [(tag, "a.csv", tag)] * 2
        if n % 3 == 0:  # another header beside it, and a blank line pandas skips
            files["b.csv"] = f"me,other\n\n{tag},x{n}\n".encode()
            expected.append((tag, "b.csv", tag))
        if n % 7 == 0:  # read alone, named in a warning, its row kept without it
            files["c.csv"] = b"me,value\n\x00\x01\n"
        if n == 11:
            files["d.csv"] = b"me,value\r\nmix11,1e5\r\n"  # CRLF: read alone, yet in the same table
            expected.append((tag, "d.csv", tag))
        if n == 12:
            files["e.csv"] = b'me,value\nmix12,"never closed\n'  # would swallow the next files' rows: alone, a warning
        if not [name for name in files if name != "c.csv"]:
            expected.append((tag, "", ""))
        put_row(storage, scratch, tag, files)
    put_row(storage, scratch, "text0", {"a.csv": b"me,value\ntext0,fast\n"})
    put_row(storage, scratch, "num0", {"a.csv": b"me,value\nnum0,1e5\n"})
    expected += [("num0", "a.csv", "num0"), ("text0", "a.csv", "text0")]  # no campaign.json: by tag
    result, _, rows = fetch_and_merge(storage.url, tmp_path / "out")
    assert [(r["tag"], r["result_file"], r["me"]) for r in rows] == expected
    assert result.stderr.count("could not read the result CSV") == len(range(0, 60, 7)) + 1
    values: dict[str, list[str]] = {}
    for r in rows:
        if r["result_file"] == "a.csv":
            values.setdefault(r["tag"], []).append(r["value"])
    assert values["mix3"] == ["3", "3.5"] and values["text0"] == ["fast"], "as written, not 3.0: the column holds text too"
    assert values["num0"] == ["1e5"], "as written, not 100000.0"
