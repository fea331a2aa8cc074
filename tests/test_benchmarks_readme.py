"""benchmarks/README.md is generated from benchmarks/results/*.json: it must be up to date, and every
benchmark's ``headline`` must give rows the table can show."""

import json
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
make_readme = pytest.importorskip("make_readme")


def test_readme_matches_the_result_files():
    expected = make_readme.render()
    assert (BENCH / "README.md").read_text() == expected, (
        "benchmarks/README.md is stale: run `.venv/bin/python benchmarks/make_readme.py` and commit it")
    project = make_readme.PROJECT_README.read_text()
    assert make_readme.project_readme(project) == project, (
        "the goal table in README.md is stale: run `.venv/bin/python benchmarks/make_readme.py` and commit it")


def test_project_readme_table_holds_only_scored_rows(tmp_path):
    text = make_readme.project_readme(f"intro\n{make_readme.START}\nold\n{make_readme.END}\ntail\n")
    table = text.split(make_readme.START)[1].split(make_readme.END)[0]
    assert "old" not in table and text.endswith("tail\n") and "(results/" not in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| [")]
    assert rows and all(" yes |" in ln or " **no** |" in ln for ln in rows)
    with pytest.raises(ValueError, match="markers"):
        make_readme.project_readme("no markers here")


@pytest.mark.parametrize("path", sorted((BENCH / "results").glob("*.json")), ids=lambda p: p.stem)
def test_every_result_file_has_a_script_with_headline_rows(path):
    module = make_readme.load_script(path.stem)
    assert module is not None, f"results/{path.name} has no benchmarks/{path.stem}.py"
    rows = module.headline(json.loads(path.read_text()))
    assert rows, f"{path.stem}.headline returned no rows"
    for row in rows:
        assert {"result", "value", "goal", "met"} <= set(row), row
        assert isinstance(row["result"], str) and row["result"] and isinstance(row["value"], str) and row["value"]
        assert row["met"] in (True, False, None) and (row["met"] is None or row["goal"]), row


def test_a_changed_result_changes_the_readme(tmp_path):
    for p in (BENCH / "results").glob("*.json"):
        shutil.copy(p, tmp_path / p.name)
    before = make_readme.render(tmp_path)
    path = tmp_path / "attention_bias.json"
    data = json.loads(path.read_text())
    data["date"] = "2001-02-03 04:05 UTC"
    for row in data["train_steps"]:
        if row["variant"] == "gridvit-alibi":
            row["ratio"] = 9.99
    path.write_text(json.dumps(data))
    after = make_readme.render(tmp_path)
    assert after != before
    line = next(ln for ln in after.splitlines() if "gridvit (ALiBi) ÷ unbiased" in ln)
    assert "9.99×" in line and "**no**" in line and "2001-02-03" in line


def test_short_machine_missing_script_and_failing_headline(tmp_path):
    m = {"cpu": "Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz", "logical_cores": 8, "torch": "2.5.0", "gpu": "H100"}
    assert make_readme.short_machine(m) == "Intel Xeon E5-2690 v4, 8 cores, torch 2.5.0, H100"
    (tmp_path / "no_such_benchmark.json").write_text(json.dumps({"date": "2020-01-01 00:00 UTC"}))
    (tmp_path / "loader.json").write_text(json.dumps({"date": "2020-01-01 00:00 UTC"}))  # no "rows"
    text = make_readme.render(tmp_path)
    assert "(no script: benchmarks/no_such_benchmark.py)" in text
    assert "| loader | (headline() failed: KeyError: 'rows') |" in text
