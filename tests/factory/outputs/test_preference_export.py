"""`factory export --format preference` on the store of a real round: loads with `datasets`, and every
chosen solution verifies again in the Docker sandbox while no rejected one does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from factory.cli.main import main
from factory.outputs.dataset_card import CARD_FILENAME, DATA_FILE, PREFERENCE_COLUMN_DOCS
from factory.outputs.export import Reverify
from factory.outputs.preference_export import (
    PREFERENCE_COLUMNS,
    export_preferences,
    preference_features,
)
from sandbox.backend import open_sandbox
from sandbox.verdicts import VERIFIED
from sandbox.verify import SourcePair, verify_pairs
from tests.factory.played_run import copy_run, expected_novelty, with_settings


def load(out: Path, tmp_path: Path) -> list[dict]:
    from datasets import load_dataset

    dataset = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.features == preference_features()
    return dataset.to_list()


@pytest.mark.docker
def test_export_loads_and_each_side_verifies_as_labelled_in_docker(run_dir, tmp_path, docker_ready):
    out = tmp_path / "prefs"
    with open_sandbox("docker", workers=2, log=lambda m: None) as sandbox:
        result = export_preferences(run_dir, out, reverify=Reverify(sandbox, 5.0))
        rows = load(out, tmp_path)
        assert len(rows) == result.rows > 0 and result.dropped == {"reverify": 0}
        assert [name for name, _ in PREFERENCE_COLUMNS] == list(rows[0])
        chosen = verify_pairs([SourcePair(r["puzzle"], r["chosen_solution"]) for r in rows], sandbox, 5.0)
        rejected = verify_pairs([SourcePair(r["puzzle"], r["rejected_solution"]) for r in rows], sandbox, 5.0)
    assert all(v.status == VERIFIED for v in chosen)
    assert [v.status for v in rejected] == [r["rejected_verdict"] for r in rows]
    for r in rows:
        assert r["prompt"].endswith(r["chosen_solution"][: -len(r["chosen"])])
        assert r["chosen"] != r["rejected"]
    card = (out / CARD_FILENAME).read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert [f["name"] for f in front["dataset_info"]["features"]] == list(PREFERENCE_COLUMN_DOCS)
    assert "## How the pairs were made" in card


def test_cli_format_preference_and_sft_only_flags(run_dir, tmp_path, capsys):
    out = tmp_path / "cli-prefs"
    code = main(["export", str(run_dir), "--out", str(out), "--format", "preference", "--no-reverify",
                 "--rounds", "1"])
    assert code == 0
    rows = load(out, tmp_path)
    assert rows and {r["round"] for r in rows} == {1}
    assert "preference pairs" in capsys.readouterr().err
    code = main(["export", str(run_dir), "--out", str(tmp_path / "x"), "--format", "preference",
                 "--include-seeds", "--no-reverify"])
    assert code == 2
    assert "include_seeds only applies with format sft" in capsys.readouterr().err


def test_the_weight_column_is_the_puzzle_weight_under_the_run_weighting(run, rows, tmp_path):
    import pyarrow.parquet as pq

    novelty = expected_novelty(rows)
    plain = tmp_path / "plain"
    export_preferences(run.run_dir, plain)
    unweighted = pq.read_table(plain / DATA_FILE).to_pylist()
    assert [name for name, _ in PREFERENCE_COLUMNS][-1] == "weight" == list(unweighted[0])[-1]
    assert {r["weight"] for r in unweighted} == {1.0}
    run_dir = with_settings(copy_run(run, tmp_path / "run"), weighting="novelty")
    export_preferences(run_dir, tmp_path / "out")
    weighted = pq.read_table(tmp_path / "out" / DATA_FILE).to_pylist()
    assert len(weighted) == len(unweighted)  # the export keeps one row per pair; training resamples them
    assert [r["weight"] for r in weighted] == pytest.approx([novelty[r["puzzle_id"]] for r in weighted])
    assert "training weight" in (tmp_path / "out" / CARD_FILENAME).read_text()
