"""The smoke tuning study end to end, as a user runs it: ORPO and DPO × 2 learning rates on validation, DPO's
beta at the picked rate, then the picks on test, and the report's tuning section."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study's command, called in this process (its stages are sweeps in processes of their own)."""
    from bench.studies.tune import main

    out = tmp_path_factory.mktemp("tune")
    # The tiny model: the study's mechanics (grid, selection on validation, the picks on test, the report)
    # are the subject; which rate wins on a random model is noise, and the test asserts none.
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main(
            [
                "tune=smoke",
                "debug=smoke",
                "eval.limit=4",
                "logger=none",
                "model=tiny",
                "isolate=false",
                "--out",
                str(out),
            ]
        )
    assert code == 0, errors.getvalue()[-3000:]
    return out, printed.getvalue()


def _records(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/metrics.json"))]


def test_grid_points_are_scored_on_validation_and_only_the_picks_on_test(study):
    out, _ = study
    searched = _records(out / "lr") + _records(out / "knob-dpo")
    assert len(searched) == 5 and all(r["status"] == "success" for r in searched)
    assert {r["eval/split"] for r in searched} == {"validation"}
    final = _records(out / "final")
    assert {r["method"] for r in final} == {"orpo", "dpo"} and {r["eval/split"] for r in final} == {"test"}
    picks = yaml.safe_load((out / "tuned.yaml").read_text())["tuned"]
    for record in final:
        assert set(record["fair/declared"]) >= {"learning_rate"}
        lr = picks[record["method"]]["train.args.learning_rate"]
        assert record["fair/trl_config"]["learning_rate"] == pytest.approx(lr)


def test_the_picks_are_the_best_validation_points(study):
    out, stdout = study
    record = json.loads((out / "tune.json").read_text())
    for method in ("orpo", "dpo"):
        entry = record["methods"][method]
        for stage in entry["stages"]:
            scores = {p["value"]: p["score"] for p in stage["points"]}
            assert len(scores) == 2 and scores[stage["value"]] == max(scores.values())
        assert f"{method}: train.args.learning_rate=" in stdout
    assert "method.args.beta" in record["methods"]["dpo"]["picked"]


def test_the_report_shows_grid_scores_picks_and_the_test_row(study):
    out, _ = study
    from bench.report.summary import main

    assert main([str(out)]) == 0
    summary = (out / "summary.md").read_text()
    tuning = summary.split("## Tuning", 1)[1]
    for method in ("orpo", "dpo"):
        assert f"**{method}**: picked `train.args.learning_rate=" in tuning
    assert tuning.count(" ← ") >= 3  # a pick marked in each stage: orpo lr, dpo lr, dpo beta
    assert tuning.count("Test with the picked settings:") == 2
