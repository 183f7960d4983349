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


def write_swimmer_cell(folder, algo, seed, x_ranges, final_success):
    """A swimmer cell's CSV as bench/exploration.py writes it, with the given training x ranges per row."""
    fields = [
        "task",
        "algo",
        "seed",
        "timesteps",
        "first_success_step",
        "success_deterministic",
        "success_stochastic",
        "return_deterministic",
        "return_stochastic",
        "left_stochastic",
        "right_stochastic",
        "x_deterministic",
        "x_stochastic",
        "train_x_min",
        "train_x_max",
        "wall_s",
    ]
    with open(folder / f"swimmer_{algo}_seed{seed}.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for i, (low, high) in enumerate(x_ranges):
            success = final_success if i == len(x_ranges) - 1 else 0.0
            writer.writerow(
                {
                    "task": "swimmer",
                    "algo": algo,
                    "seed": seed,
                    "timesteps": 10_000 * (i + 1),
                    "first_success_step": "" if high < 2 else 5_000,
                    "success_deterministic": f"{success:.2f}",
                    "success_stochastic": "0.00",
                    "return_deterministic": "1.0",
                    "return_stochastic": "1.0",
                    "x_deterministic": "0.50",
                    "x_stochastic": "0.40",
                    "train_x_min": f"{low:.2f}",
                    "train_x_max": f"{high:.2f}",
                    "wall_s": 1,
                }
            )


def test_swimmer_summary_counts_solved_seeds_and_both_directions(tmp_path, monkeypatch, capsys):
    # seed 0: out to -1.5 in the first window and +2.0 (the line) in the second: both ways, solved
    write_swimmer_cell(tmp_path, "SQL", 0, [(-1.5, 0.2), (-0.1, 2.0)], 1.0)
    # seed 1: only backwards beyond 1 m; seed 2: only to +1.0, not beyond
    write_swimmer_cell(tmp_path, "SQL", 1, [(-4.0, 0.3), (-9.0, 0.1)], 0.0)
    write_swimmer_cell(tmp_path, "SQL", 2, [(-0.5, 1.0), (-0.9, 0.8)], 0.0)
    run(monkeypatch, "--summary", "--out", str(tmp_path))
    printed = capsys.readouterr().out
    both_ways = "training episodes more than 1 m out on both sides on 1"
    assert f"SQL: solved on 1 of 3 seeds; a training success on 1; {both_ways}" in printed
    assert "training x -1.50..2.00" in printed and "training x -9.00..0.30" in printed
