import csv
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "exploration.py"


def run(monkeypatch, *argv):
    # As `python bench/exploration.py` does, the script's folder is first on sys.path (for bench/common.py).
    monkeypatch.syspath_prepend(str(BENCH.parent))
    monkeypatch.setattr(sys, "argv", ["exploration.py", *argv])
    runpy.run_path(str(BENCH), run_name="__main__")


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_cells_csv_skip_blocked_continuation_and_summary(tmp_path, monkeypatch, capsys):
    out = ["--out", str(tmp_path), "--eval-episodes", "2"]
    run(monkeypatch, "--task", "maze", "--algo", "SAC", "--seed", "0", "--timesteps", "200", "--eval-freq", "100", *out)
    maze = rows(tmp_path / "maze_SAC_seed0.csv")
    assert [row["timesteps"] for row in maze] == ["100", "200"]
    assert all(0 <= float(row["success_stochastic"]) <= 1 and row["x_stochastic"] == "" for row in maze)
    assert (tmp_path / "models" / "maze_SAC_seed0.zip").exists() and (tmp_path / "maze_SAC_seed0_paths.npy").exists()

    run(monkeypatch, "--task", "maze", "--algo", "SAC", "--seed", "0", *out)  # exists: skipped, nothing trained
    assert "exists: skipped" in capsys.readouterr().out

    # the blocked cell continues the trained maze agent; its steps count from the continuation's start
    run(monkeypatch, "--task", "blocked", "--algo", "SAC", "--seed", "0", "--timesteps", "100", "--eval-freq", "100", *out)
    blocked = rows(tmp_path / "blocked_SAC_seed0.csv")
    assert [row["timesteps"] for row in blocked] == ["100"]

    capsys.readouterr()
    run(monkeypatch, "--summary", "--out", str(tmp_path))
    printed = capsys.readouterr().out
    assert "maze (TwoPassageMaze-v0, SAC 200 steps)" in printed and "blocked (TwoPassageMaze-v0, SAC 100 steps)" in printed
    assert printed.count("SAC: solved on ") == 2
    assert "maze solved" in printed or "maze not solved" in printed
    assert (tmp_path / "exploration_curves.png").stat().st_size > 10_000
    assert (tmp_path / "maze_paths.png").stat().st_size > 10_000
