"""`factory export`: the store of a real run in, a Hugging Face dataset out, checked row by row against the store."""

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
from factory.outputs.dataset_card import DATA_FILE
from factory.outputs.export import export_dataset, pair_rows
from factory.outputs.export_filters import ExportFilters, format_rounds, near_set, near_set_p3, parse_rounds
from factory.outputs.export_row import COLUMNS, features
from factory.outputs.hub import HubTarget, hub_target, push_to_hub
from factory.store import RunStore
from puzzles.canonical import NEAR_DUPLICATE_THRESHOLD, near_duplicate_tokens, similarity
from puzzles.seeds import load_seeds, load_task_seeds
from sandbox.verdicts import VERIFIED
from tests.factory.played_run import StoreRows, copy_run, expected_novelty, expected_rates, with_settings

REPO = Path(__file__).resolve().parents[3]


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
                    "weight": 1.0,  # the played run has no weighting
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------------
# round trip


def test_load_dataset_gives_back_exactly_the_generated_pairs_of_the_store(run, run_dir, default_export, tmp_path):
    loaded = load(default_export, tmp_path)
    expected = expected_rows(run_dir)
    assert len(loaded) == len(expected) == StoreRows(run_dir).generated_pairs() > 0
    for got, want in zip(loaded, expected, strict=True):
        assert got == want
    assert [name for name, _ in COLUMNS] == list(loaded[0])
    assert {row["origin"] for row in loaded} == {"generated"}
    assert {row["round"] for row in loaded} == set(run.finished)  # the open round has no pairs
    assert len({(row["puzzle_hash"], row["solution_hash"]) for row in loaded}) == len(loaded)


def test_the_weight_column_is_each_pair_weight_under_the_run_weighting(run, tmp_path):
    import pyarrow.parquet as pq

    rows = StoreRows(run.run_dir)
    novelty, rates = expected_novelty(rows), expected_rates(rows)
    run_dir = with_settings(copy_run(run, tmp_path / "run"), weighting="both")
    export_dataset(run_dir, tmp_path / "out", ExportFilters(include_seeds=True))
    loaded = pq.read_table(tmp_path / "out" / DATA_FILE).to_pylist()
    assert [name for name, _ in COLUMNS][-1] == "weight" and list(loaded[0])[-1] == "weight"
    for row in loaded:
        if row["origin"] == "seed":
            assert row["weight"] == 1.0
            continue
        rate = rates[row["puzzle_id"]]
        learn = 0.0 if rate in (0.0, 1.0) else 1.0 - rate
        assert row["weight"] == pytest.approx(learn * novelty[row["puzzle_id"]])
    assert len({row["weight"] for row in loaded}) > 2
    assert "training weight" in (tmp_path / "out" / "README.md").read_text()


def test_include_seeds_adds_the_seed_reference_pairs(run_dir, tmp_path):
    export_dataset(run_dir, tmp_path / "out", ExportFilters(include_seeds=True))
    loaded = load(tmp_path / "out", tmp_path)
    assert loaded == expected_rows(run_dir, include_seeds=True)
    seeds = [row for row in loaded if row["origin"] == "seed"]
    assert len(seeds) == len(StoreRows(run_dir).of("pairs", 0))
    assert {row["seed_key"] for row in seeds} == {s.key for s in load_task_seeds("train")}
    assert all(
        r["round"] == 0 and r["attempt_id"] is None and r["model"] is None and r["seed_key"] for r in seeds
    )


def test_exported_pairs_really_verify_in_the_sandbox(default_export):
    import pyarrow.parquet as pq

    from sandbox.backend import open_sandbox
    from sandbox.verify import SourcePair, verify_pairs

    rows = pq.read_table(default_export / DATA_FILE).to_pylist()
    with open_sandbox("process", workers=2, log=lambda m: None) as box:
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
    with pytest.raises(UserError, match=f"^rounds {spec!r}: ") as error:
        parse_rounds(spec)
    assert "--" not in str(error.value)  # the library says it in its own terms, not in CLI flags


@pytest.mark.parametrize("spec", ["2", "2-3"])
def test_rounds_filter_keeps_only_those_rounds(run_dir, tmp_path, spec):
    result = export_dataset(run_dir, tmp_path / "out", ExportFilters(rounds=parse_rounds(spec)))
    loaded = load(tmp_path / "out", tmp_path)
    every = expected_rows(run_dir)
    assert loaded == [row for row in every if row["round"] == 2] != []
    assert result.rows_by_round == {2: len(loaded)}
    assert result.dropped["rounds"] == sum(row["round"] == 1 for row in every) > 0


def test_min_solve_rate_drops_exactly_the_puzzles_solved_less_often(run_dir, tmp_path):
    every = expected_rows(run_dir)
    rates = sorted({row["solve_rate"] for row in every})
    assert len(rates) > 1, "the run's puzzles were all solved equally often: nothing to cut"
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


def closeness(rows: list[dict], sources: list[str]) -> dict[int, float]:
    """pair_id -> the highest near-duplicate similarity of its puzzle to any of ``sources``."""
    others = [near_duplicate_tokens(s) for s in sources]
    return {
        row["pair_id"]: max(similarity(near_duplicate_tokens(row["puzzle"]), t) for t in others) for row in rows
    }


def test_exclude_near_seeds_test(run_dir, tmp_path):
    every = expected_rows(run_dir)
    closest = closeness(every, [s.puzzle.source for s in load_seeds("test")])
    levels = sorted(set(closest.values()))
    assert len(levels) > 1, "every exported puzzle is as close to the held-out seeds: nothing to cut"
    # the default threshold, and one between two of the similarities this run has, so it cuts
    for threshold in (NEAR_DUPLICATE_THRESHOLD, (levels[0] + levels[1]) / 2):
        out = tmp_path / f"out-{threshold}"
        result = export_dataset(run_dir, out, ExportFilters(near=(near_set("seeds-test", threshold),)))
        kept = {row["pair_id"] for row in load(out, tmp_path)}
        assert kept == {pair_id for pair_id, score in closest.items() if score < threshold}
        assert result.dropped["near_eval"] == len(every) - len(kept)
    assert 0 < len(kept) < len(every)
    with pytest.raises(UserError, match="known sets are task-test, seeds-test") as error:
        near_set("seeds-train")
    assert "--" not in str(error.value)


def test_exclude_near_p3_drops_puzzles_near_a_p3_file(run_dir, tmp_path):
    every = expected_rows(run_dir)
    target = every[len(every) // 2]
    body = target["puzzle"].replace(f"def {target['puzzle_name']}(", "def sat(", 1)
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
    closest = closeness(every, [body])
    assert closest[target["pair_id"]] == 1.0
    assert loaded == [row for row in every if closest[row["pair_id"]] < NEAR_DUPLICATE_THRESHOLD]
    assert 0 < len(loaded) < len(every)  # the target's family went, the others stayed
    assert result.dropped["near_eval"] == len(every) - len(loaded)
    with pytest.raises(UserError, match="P3 data file not found"):
        near_set_p3(tmp_path / "missing" / "puzzles.json")


def test_filters_combine_and_nothing_left_is_a_clear_error(run_dir, tmp_path):
    with pytest.raises(UserError, match="nothing to export .* relax the filters"):
        export_dataset(run_dir, tmp_path / "out", ExportFilters(rounds=frozenset({7})))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(UserError, match="^min_solve_rate must be between 0 and 1"):
        ExportFilters(min_solve_rate=1.5)
    with pytest.raises(UserError, match="^max_per_puzzle must be at least 1"):
        ExportFilters(max_per_puzzle=0)
    two = export_dataset(run_dir, tmp_path / "two", ExportFilters(rounds=frozenset({2}), max_per_puzzle=1))
    rows = [row for row in expected_rows(run_dir) if row["round"] == 2]
    assert two.rows == len({row["puzzle_hash"] for row in rows}) < len(rows)


def test_export_refuses_a_file_or_a_non_empty_directory_unless_forced(run_dir, tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match="is a file") as error:
        export_dataset(run_dir, tmp_path / "file")
    assert "--" not in str(error.value)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is not empty") as error:
        export_dataset(run_dir, out)
    assert "--" not in str(error.value)
    assert export_dataset(run_dir, out, force=True).rows > 0
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------------
# the card


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first markdown table after the line ``heading``, header and rule left out."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    while not lines[start].startswith("|"):
        start += 1
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_card_front_matter_is_hub_yaml_with_the_required_keys(default_export, run_dir):
    text = (default_export / "README.md").read_text()
    meta = front_matter(text)
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


def test_card_body_states_settings_funnel_verdicts_pass_at_k_and_verification(run, default_export, run_dir):
    text = (default_export / "README.md").read_text()
    rows = StoreRows(run_dir)
    assert f"| `attempts` | {rows.config['attempts']} |" in text
    assert f"| `model` | {rows.config['model']} |" in text
    exported = Counter(row["round"] for row in expected_rows(run_dir))
    funnel_rows = table_rows(text, "## Rounds")
    assert [cells[0] for cells in funnel_rows] == ["1", "2", f"{run.open_round} (unfinished)"]
    columns = ["proposed", "invalid", "trivial", "duplicate", "contaminated", "accepted", "solved_puzzles", "pairs"]
    for r, cells in zip((1, 2, run.open_round), funnel_rows, strict=True):
        funnel = rows.funnel(r)
        model = rows.of("rounds", r)[0]["model"]
        assert cells[1:] == [f"`{model}`", *(str(funnel.get(c, 0)) for c in columns), str(exported[r])]
    verdict_rows = table_rows(text, "Sandbox verdicts of every sampled solution, by round:")
    head = next(line for line in text.splitlines() if line.startswith("| round | verified |"))
    verdicts = [cell.strip() for cell in head.strip("|").split("|")][1:]
    for r, cells in zip((1, 2, run.open_round), verdict_rows, strict=True):
        assert cells == [str(r), *(str(rows.verdict_counts(r)[v]) for v in verdicts)]
    pass_rows = table_rows(text, "## Evaluation")
    assert [cells[0] for cells in pass_rows] == ["0 (base)", "1", "2"]
    for r, cells in zip((0, 1, 2), pass_rows, strict=True):
        assert cells[1:] == [f"{rows.pass_at_k(r)[k]:.3f}" for k in sorted(rows.pass_at_k(r))]
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
                "1",
                "--min-solve-rate",
                "0.25",
                "--exclude-near",
                "seeds-test",
                "--sandbox",
                "process",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "exported" in captured.err
    import pyarrow.parquet as pq

    rows = pq.read_table(out / DATA_FILE).num_rows
    assert f"re-verified at export: {rows} of {rows} verified again" in captured.err
    text = (out / "README.md").read_text()
    assert f"Re-verified at export, in a fresh sandbox: {rows} of {rows} verified again" in text
    assert "- rounds 2-3" in text and "at most 1 solution(s) per puzzle" in text
    assert "puzzles solved by at least 25% of their attempts in their round" in text


def test_cli_refuses_a_non_empty_out_dir_unless_forced(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["export", str(run_dir), "--out", str(out), "--sandbox", "process"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "is not empty" in err and "--force" in err
    assert main(["export", str(run_dir), "--out", str(out), "--force", "--sandbox", "process"]) == 0
    assert (out / DATA_FILE).is_file() and (out / "notes.txt").read_text() == "mine"
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "file"), "--sandbox", "process"]) == 2
    assert capsys.readouterr().err == f"factory: --out {tmp_path / 'file'} is a file: give a directory\n"


def test_cli_missing_run_dir_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--sandbox", "process"]) == 2
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
    assert main(["export", str(run_dir), "--out", str(out), "--push-to-hub", "alice/pairs", "--sandbox", "process"]) == 2
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
            "--sandbox",
            "process",
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


def test_export_re_verifies_and_leaves_out_a_pair_that_no_longer_verifies(run, tmp_path, capsys):
    """A stored pair whose solution was changed after the fact (here by hand, in a copy of the store)
    fails the re-verification at export: it is left out, counted, and the card says so."""
    import sqlite3

    import pyarrow.parquet as pq

    from factory.store import STORE_FILENAME
    from tests.factory.played_run import copy_run

    run_dir = copy_run(run, tmp_path / "run")
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    with db:
        pair_id, source = db.execute("SELECT id, solution_source FROM pairs WHERE round > 0 ORDER BY id").fetchone()
        db.execute("UPDATE pairs SET solution_source = ? WHERE id = ?",
                   (source.replace("return", "raise ValueError() #", 1), pair_id))
    db.close()
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--out", str(out), "--sandbox", "process"]) == 0
    err = capsys.readouterr().err
    exported = pq.read_table(out / DATA_FILE)
    assert pair_id not in exported.column("pair_id").to_pylist()
    checked = exported.num_rows + 1
    assert f"re-verified at export: {checked - 1} of {checked} verified again (error 1)" in err
    assert "reverify 1" in err
    assert f"{checked - 1} of {checked} verified again (error 1)" in (out / "README.md").read_text()
    sample = tmp_path / "sample"
    assert main(["export", str(run_dir), "--out", str(sample), "--sandbox", "process", "--reverify-sample", "2"]) == 0
    assert "re-verified at export: " in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(tmp_path / "none"), "--no-reverify"]) == 0
    assert pair_id in pq.read_table(tmp_path / "none" / DATA_FILE).column("pair_id").to_pylist()
