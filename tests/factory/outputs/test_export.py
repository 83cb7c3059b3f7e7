"""`factory export`: a real run store in, a Hugging Face dataset out, checked row by row against the store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from factory.cli.main import main
from factory.errors import UserError
from factory.outputs.dataset_card import DATA_FILE, read_front_matter
from factory.outputs.export import (
    COLUMNS,
    ExportFilters,
    HubTarget,
    export_dataset,
    features,
    format_rounds,
    hub_target,
    near_set,
    near_set_p3,
    pair_rows,
    parse_rounds,
    push_to_hub,
)
from factory.store import RunStore
from puzzles.canonical import near_duplicate_tokens, similarity
from puzzles.seeds import load_seeds
from sandbox.verdicts import VERIFIED
from tests.factory.run_fixture import build_run

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("run") / "run", open_round=True).run_dir


@pytest.fixture(scope="module")
def default_export(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "pairs"
    export_dataset(run_dir, out)
    return out


def load(out: Path, tmp_path: Path) -> list[dict]:
    from datasets import load_dataset

    dataset = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.features == features()
    return dataset.to_list()


def expected_rows(run_dir: Path, include_seeds: bool = False) -> list[dict]:
    """The rows the store holds, computed here from the store's own records, not by factory.export."""
    with RunStore.open(run_dir, create=False) as store:
        attempts = {}
        for info in store.rounds():
            attempts.update({a.id: a for a in store.attempts_of_round(info.round)})
        rows = []
        for pair in store.stored_pairs():
            puzzle = store.puzzle(pair.puzzle_id)
            if puzzle.origin == "seed" and not include_seeds:
                continue
            attempt = attempts.get(pair.attempt_id)
            tried = [a for a in attempts.values() if a.puzzle_id == puzzle.id and a.round == puzzle.round]
            rows.append(
                {
                    "puzzle": puzzle.source,
                    "solution": pair.solution_source,
                    "puzzle_name": puzzle.name,
                    "solution_name": pair.solution_source.split("def ", 1)[1].split("(", 1)[0],
                    "answer_arg": puzzle.answer_arg,
                    "answer_type": puzzle.answer_type,
                    "round": pair.round,
                    "model": attempt.model if attempt else None,
                    "puzzle_model": puzzle.model,
                    "puzzle_hash": puzzle.canonical_hash,
                    "solution_hash": pair.solution_hash,
                    "verify_seconds": attempt.seconds if attempt else None,
                    "solve_rate": sum(a.status == VERIFIED for a in tried) / len(tried) if tried else None,
                    "solution_length": pair.length,
                    "origin": puzzle.origin,
                    "seed_key": puzzle.key,
                    "prompt_seed": puzzle.prompt_seed,
                    "puzzle_round": puzzle.round,
                    "pair_id": pair.id,
                    "puzzle_id": puzzle.id,
                    "attempt_id": pair.attempt_id,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------------
# round trip


def test_load_dataset_gives_back_exactly_the_generated_pairs_of_the_store(run_dir, default_export, tmp_path):
    loaded = load(default_export, tmp_path)
    expected = expected_rows(run_dir)
    assert len(loaded) == len(expected) > 50
    for got, want in zip(loaded, expected, strict=True):
        assert got == want
    assert [name for name, _ in COLUMNS] == list(loaded[0])
    assert {row["origin"] for row in loaded} == {"generated"}
    assert {row["round"] for row in loaded} == {1, 2, 3}  # the open round 4 has no pairs
    assert len({(row["puzzle_hash"], row["solution_hash"]) for row in loaded}) == len(loaded)


def test_include_seeds_adds_the_seed_reference_pairs(run_dir, tmp_path):
    export_dataset(run_dir, tmp_path / "out", ExportFilters(include_seeds=True))
    loaded = load(tmp_path / "out", tmp_path)
    assert loaded == expected_rows(run_dir, include_seeds=True)
    seeds = [row for row in loaded if row["origin"] == "seed"]
    assert len(seeds) == len(load_seeds("train"))
    assert all(
        r["round"] == 0 and r["attempt_id"] is None and r["model"] is None and r["seed_key"] for r in seeds
    )


def test_exported_pairs_really_verify_in_the_sandbox(default_export):
    import pyarrow.parquet as pq

    from sandbox.backend import open_sandbox
    from sandbox.verify import SourcePair, verify_pairs

    rows = pq.read_table(default_export / DATA_FILE).to_pylist()
    with open_sandbox("process", workers=4, log=lambda m: None) as box:
        results = verify_pairs([SourcePair(r["puzzle"], r["solution"]) for r in rows], box, 5.0)
    assert Counter(r.status for r in results) == {VERIFIED: len(rows)}


# ---------------------------------------------------------------------------------------------------
# filters


@pytest.mark.parametrize(
    ("spec", "rounds"),
    [("1-3", {1, 2, 3}), ("2,3", {2, 3}), ("1-2,5", {1, 2, 5}), (" 3 ", {3}), ("2-2", {2})],
)
def test_parse_rounds(spec, rounds):
    assert parse_rounds(spec) == rounds
    assert parse_rounds(format_rounds(frozenset(rounds))) == rounds


@pytest.mark.parametrize("spec", ["", "a", "3-1", "1..3", "1,,2", "-1"])
def test_parse_rounds_refuses_nonsense(spec):
    with pytest.raises(UserError, match="--rounds"):
        parse_rounds(spec)


@pytest.mark.parametrize("spec", ["2-3", "2,3"])
def test_rounds_filter_keeps_only_those_rounds(run_dir, tmp_path, spec):
    result = export_dataset(run_dir, tmp_path / "out", ExportFilters(rounds=parse_rounds(spec)))
    loaded = load(tmp_path / "out", tmp_path)
    assert loaded == [row for row in expected_rows(run_dir) if row["round"] in (2, 3)]
    assert result.rows_by_round.keys() == {2, 3}
    assert result.dropped["rounds"] == sum(row["round"] == 1 for row in expected_rows(run_dir))


def test_min_solve_rate_drops_exactly_the_puzzles_solved_less_often(run_dir, tmp_path):
    every = expected_rows(run_dir)
    rates = sorted({row["solve_rate"] for row in every})
    threshold = rates[len(rates) // 2]  # a threshold that cuts somewhere in the middle
    result = export_dataset(run_dir, tmp_path / "out", ExportFilters(min_solve_rate=threshold))
    loaded = load(tmp_path / "out", tmp_path)
    assert loaded == [row for row in every if row["solve_rate"] >= threshold]
    assert 0 < result.dropped["min_solve_rate"] < len(every)


def test_max_per_puzzle_keeps_the_shortest_solutions(run_dir, tmp_path):
    every = expected_rows(run_dir)
    by_puzzle = defaultdict(list)
    for row in every:
        by_puzzle[row["puzzle_hash"]].append(row)
    assert max(len(rows) for rows in by_puzzle.values()) > 1  # the filter has something to do
    export_dataset(run_dir, tmp_path / "out", ExportFilters(max_per_puzzle=1))
    loaded = load(tmp_path / "out", tmp_path)
    assert len(loaded) == len(by_puzzle)
    for row in loaded:
        shortest = min(by_puzzle[row["puzzle_hash"]], key=lambda r: (r["solution_length"], r["pair_id"]))
        assert row == shortest


def test_exclude_near_seeds_test(run_dir, tmp_path):
    # The run was decontaminated against the held-out seeds at 0.8, so nothing more goes at 0.8 ...
    result = export_dataset(run_dir, tmp_path / "strict", ExportFilters(near=(near_set("seeds-test"),)))
    assert result.dropped["near_eval"] == 0
    # ... but a stricter threshold finds generated puzzles that are still close to a held-out seed.
    threshold = 0.6
    export_dataset(run_dir, tmp_path / "out", ExportFilters(near=(near_set("seeds-test", threshold),)))
    loaded = load(tmp_path / "out", tmp_path)
    tests = [near_duplicate_tokens(s.puzzle.source) for s in load_seeds("test")]

    def closest(source: str) -> float:
        tokens = near_duplicate_tokens(source)
        return max(similarity(tokens, t) for t in tests)

    every = expected_rows(run_dir)
    kept = {row["pair_id"] for row in loaded}
    assert 0 < len(kept) < len(every)
    for row in every:
        assert (row["pair_id"] in kept) == (closest(row["puzzle"]) < threshold)
    with pytest.raises(UserError, match="known sets are seeds-test"):
        near_set("seeds-train")


def test_exclude_near_p3_drops_puzzles_near_a_p3_file(run_dir, tmp_path):
    every = expected_rows(run_dir)
    target = every[len(every) // 2]
    body = target["puzzle"].replace(f"def {target['puzzle_name']}(", "def sat(", 1)
    body = (
        body.replace("salt=", "salt2=").replace("salt >=", "salt2 >=").replace("salt *", "salt2 *")
    )  # renamed
    p3 = tmp_path / "p3"
    p3.mkdir()
    entry = {
        "name": "Mine:0",
        "sat": body,
        "ans_type": target["answer_type"],
        "sol_header": "def sol():",
        "sol_bodies": [],
        "module": "mine.py",
    }
    (p3 / "puzzles.json").write_text(json.dumps([entry]))
    (p3 / "split.json").write_text(json.dumps({"train": [], "test": ["Mine"]}))
    result = export_dataset(
        run_dir, tmp_path / "out", ExportFilters(near=(near_set_p3(p3 / "puzzles.json"),))
    )
    loaded = load(tmp_path / "out", tmp_path)
    assert loaded == [row for row in every if row["puzzle_hash"] != target["puzzle_hash"]]
    assert result.dropped["near_eval"] == sum(row["puzzle_hash"] == target["puzzle_hash"] for row in every)
    with pytest.raises(UserError, match="P3 data file not found"):
        near_set_p3(tmp_path / "missing" / "puzzles.json")


def test_filters_combine_and_nothing_left_is_a_clear_error(run_dir, tmp_path):
    with pytest.raises(UserError, match="nothing to export .* relax the filters"):
        export_dataset(run_dir, tmp_path / "out", ExportFilters(rounds=frozenset({7})))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(UserError, match="between 0 and 1"):
        ExportFilters(min_solve_rate=1.5)
    with pytest.raises(UserError, match="at least 1"):
        ExportFilters(max_per_puzzle=0)


# ---------------------------------------------------------------------------------------------------
# the card


def test_card_front_matter_is_hub_yaml_with_the_required_keys(default_export, run_dir):
    text = (default_export / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta == read_front_matter(text)
    for key in (
        "license",
        "task_categories",
        "tags",
        "configs",
        "dataset_info",
        "size_categories",
        "pretty_name",
    ):
        assert key in meta, key
    assert meta["license"] == "mit"
    assert "text-generation" in meta["task_categories"]
    assert {"code", "synthetic", "verified"} <= set(meta["tags"])
    (config,) = meta["configs"]
    assert config["config_name"] == "default"
    (files,) = config["data_files"]
    assert files["split"] == "train" and list(default_export.glob(files["path"])) == [
        default_export / DATA_FILE
    ]
    info = meta["dataset_info"]
    assert [f["name"] for f in info["features"]] == [name for name, _ in COLUMNS]
    assert info["splits"][0]["num_examples"] == len(expected_rows(run_dir))


def test_card_body_states_settings_funnel_verdicts_pass_at_k_and_verification(default_export, run_dir):
    text = (default_export / "README.md").read_text()
    with RunStore.open(run_dir, create=False) as store:
        config = store.config()
        funnel = store.funnel(2)
        evals = store.evals()
    assert f"| `attempts` | {config['attempts']} |" in text
    assert f"| `model` | {config['model']} |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 2 | "))
    assert f"| {funnel['proposed']} | {funnel['invalid']} | {funnel['trivial']} |" in row
    assert "| 4 (unfinished) |" in text
    assert "Sandbox verdicts" in text and "| verified |" in text.replace(
        "| round | verified |", "| verified |"
    )
    for e in evals:
        assert f"{e.pass_at_k:.3f}" in text
    assert "| 0 (base) |" in text
    for heading in ("## How verification works", "## Licence", "## Generation settings", "## Loading"):
        assert heading in text


# ---------------------------------------------------------------------------------------------------
# the command line


def test_cli_export_with_filters(run_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "export",
                str(run_dir),
                "--out",
                str(out),
                "--rounds",
                "2-3",
                "--max-per-puzzle",
                "2",
                "--min-solve-rate",
                "0.5",
                "--exclude-near",
                "seeds-test",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "exported" in captured.err
    text = (out / "README.md").read_text()
    assert "- rounds 2-3" in text and "at most 2 solution(s) per puzzle" in text


def test_cli_refuses_a_non_empty_out_dir_unless_forced(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["export", str(run_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty" in err and "--force" in err
    assert main(["export", str(run_dir), "--out", str(out), "--force"]) == 0
    assert (out / DATA_FILE).is_file() and (out / "notes.txt").read_text() == "mine"


def test_cli_missing_run_dir_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("factory: ") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------
# the Hub (there is none here: everything up to the network, and the failures)


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_push_without_a_token_fails_before_any_work_or_network(
    run_dir, tmp_path, capsys, no_token, no_network
):
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--out", str(out), "--push-to-hub", "alice/pairs"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "factory: cannot push: no Hugging Face token; set HF_TOKEN or run `hf auth login`, then push again\n"
    )
    assert not out.exists()


def test_push_offline_is_refused_up_front(monkeypatch, no_token, no_network):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        hub_target("alice/pairs")


@pytest.mark.parametrize("repo_id", ["pairs", "alice/", "/pairs", "a/b/c", "alice/pa irs"])
def test_push_needs_user_slash_name(repo_id, no_network):
    with pytest.raises(UserError, match="expected USER/NAME"):
        hub_target(repo_id, token="hf_test")


def test_push_with_token_but_unreachable_hub_is_one_clear_line(run_dir, tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(
        HF_TOKEN="hf_test",
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "factory.cli",
            "export",
            str(run_dir),
            "--out",
            str(out),
            "--push-to-hub",
            "alice/pairs",
            "--private",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("factory:")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"factory: cannot reach the Hugging Face Hub at http://127.0.0.1:{port} (")
    assert "Traceback" not in done.stderr
    assert (out / DATA_FILE).is_file()  # the export itself is complete, as the message says


def test_push_sends_the_exported_rows_and_card(default_export, monkeypatch, no_network):
    from datasets import Dataset
    from huggingface_hub import HfApi

    calls = {}
    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **k: {"name": "alice"})

    def fake_push(self, repo_id, **kwargs):
        calls["push"] = (repo_id, kwargs, self.to_list(), self.features)

    def fake_upload(self, **kwargs):
        calls["upload"] = kwargs
        calls["upload_token"] = self.token

    monkeypatch.setattr(Dataset, "push_to_hub", fake_push)
    monkeypatch.setattr(HfApi, "upload_file", fake_upload)
    target = HubTarget("alice/pairs", "hf_test", True, "https://hub.invalid")
    url = push_to_hub(default_export, target)
    assert url == "https://hub.invalid/datasets/alice/pairs"
    repo_id, kwargs, rows, pushed_features = calls["push"]
    assert repo_id == "alice/pairs" and kwargs["private"] is True and kwargs["token"] == "hf_test"
    assert kwargs["split"] == "train" and pushed_features == features()
    import pyarrow.parquet as pq

    assert rows == pq.read_table(default_export / DATA_FILE).to_pylist()
    upload = calls["upload"]
    assert upload["path_in_repo"] == "README.md" and upload["repo_type"] == "dataset"
    assert Path(upload["path_or_fileobj"]).read_text() == (default_export / "README.md").read_text()
    assert calls["upload_token"] == "hf_test"


def test_push_with_a_rejected_token_says_so(default_export, monkeypatch, no_network):
    from types import SimpleNamespace

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    def unauthorized(self, *args, **kwargs):
        response = SimpleNamespace(status_code=401, headers={}, request=None)  # what the error reads of it
        raise HfHubHTTPError("401 Client Error: Unauthorized", response=response)

    monkeypatch.setattr(HfApi, "whoami", unauthorized)
    with pytest.raises(UserError, match=r"refused the token \(HTTP 401\)"):
        push_to_hub(default_export, HubTarget("alice/pairs", "hf_bad", False, "https://hub.invalid"))


def test_pair_rows_cover_every_stored_pair(run_dir):
    with RunStore.open(run_dir, create=False) as store:
        rows = pair_rows(store)
        assert [row.pair_id for row in rows] == [pair.id for pair in store.stored_pairs()]
