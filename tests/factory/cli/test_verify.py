"""`factory verify` and `factory sandbox`: the command-line contract other tools depend on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factory.cli.main import main

GOOD = {"f": "def f(x: int):\n    return x == 2\n", "g": "def g():\n    return 2\n"}
BAD = {"f": "def f(x: int):\n    return x == 2\n", "g": "def g():\n    return 3\n"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_results_have_one_line_per_input_line_in_order(tmp_path, capsys):
    rows = [
        dict(GOOD, id="a", extra=[1]),
        dict(BAD, id=7),
        {"id": None, "f": "not python", "g": "def g(): pass"},
    ]
    out = tmp_path / "out" / "results.jsonl"
    code = main(
        ["verify", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--out", str(out), "--sandbox", "process"]
    )
    assert code == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in results] == [("a", "verified"), (7, "wrong"), (None, "invalid")]
    assert (
        results[0]["extra"] == [1]
        and "f" not in results[0]
        and set(results[1]) == {"id", "status", "seconds", "detail"}
    )
    table = capsys.readouterr().err
    assert "verified" in table and "pairs/s" in table


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_end_at_newline_only(tmp_path, separator, newline):
    """Characters that str.splitlines splits at may stand raw inside a JSON string."""
    from factory.verify_files import read_pairs_jsonl

    rows = [dict(GOOD, id=f"a{separator}b", note=f"x{separator}y"), dict(BAD, id=2)]
    text = newline.join(json.dumps(row, ensure_ascii=False) for row in rows) + newline
    assert separator in text
    path = tmp_path / "in.jsonl"
    path.write_bytes(text.encode("utf-8"))
    assert read_pairs_jsonl(path) == rows
    path.write_bytes(text.rstrip("\r\n").encode("utf-8"))  # no newline after the last line
    assert read_pairs_jsonl(path) == rows


def test_raw_line_separator_in_a_record_verifies(tmp_path):
    row = dict(GOOD, id="p\u2028q", note="r\x85s")
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "r.jsonl"
    assert main(["verify", str(path), "--out", str(out), "--sandbox", "process"]) == 0
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    assert [(r["id"], r["note"], r["status"]) for r in results] == [("p\u2028q", "r\x85s", "verified")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": 1, "f": "x", "g": "y"}\nnot json\n', "in.jsonl:2: not a JSON object"),
        ("[1, 2]\n", "in.jsonl:1: not a JSON object"),
        ('{"id": 1, "f": 3, "g": "y"}\n', "in.jsonl:1: field 'f' must be a string"),
        ('{"id": 1, "f": "x"}\n', "in.jsonl:1: field 'g' must be a string"),
        ("\n", "in.jsonl:1: not a JSON object"),
    ],
)
def test_malformed_input_names_the_line(tmp_path, capsys, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    assert main(["verify", str(path), "--out", str(tmp_path / "r.jsonl"), "--sandbox", "process"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.jsonl").exists()


def test_unreadable_input_is_a_one_line_error(tmp_path, capsys):
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00junk")
    assert main(["verify", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["verify", str(binary), "--out", str(tmp_path / "r.jsonl"), "--sandbox", "process"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_unusable_sandbox_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code = main(
        [
            "verify",
            str(write_jsonl(tmp_path / "in.jsonl", [GOOD])),
            "--out",
            str(tmp_path / "r.jsonl"),
            "--sandbox",
            "docker",
        ]
    )
    assert code == 3
    assert "sandbox unavailable" in capsys.readouterr().err


def test_console_script_with_docker(tmp_path, docker_ready):
    path = write_jsonl(tmp_path / "in.jsonl", [dict(GOOD, id=i) for i in range(5)] + [dict(BAD, id=5)])
    out = tmp_path / "r.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "factory.cli",
            "verify",
            str(path),
            "--out",
            str(out),
            "--sandbox",
            "docker",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["verified"] * 5 + [
        "wrong"
    ]
    assert "(docker)" in done.stderr


def test_sandbox_status_reports_engine_and_image(docker_ready, capsys):
    assert main(["sandbox", "status"]) == 0
    out = capsys.readouterr().out
    assert "engine:     reachable" in out and "present" in out
