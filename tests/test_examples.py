import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_main_job_trains_on_pendulum_and_saves(tmp_path, monkeypatch, capsys):
    argv = ["train_pendulum.py", "--timesteps", "1100", "--save", str(tmp_path / "sql_pendulum.zip")]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "train_pendulum.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "untrained policy: mean return" in printed
    assert "after 1100 steps: mean return" in printed
    assert (tmp_path / "sql_pendulum.zip").stat().st_size > 0


def test_multigoal_example_writes_both_figures(tmp_path, monkeypatch, capsys):
    argv = ["multigoal.py", "--timesteps", "300", "--eval-episodes", "5", "--output-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "multigoal.py"), run_name="__main__")
    for name in ("multigoal_q.png", "multigoal_cost.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    printed = capsys.readouterr().out
    counts = [int(line.rsplit(":", 1)[1]) for line in printed.splitlines() if line.startswith("  ")]
    assert len(counts) == 5 and sum(counts) == 5  # four goals and "no goal" account for every episode


def test_compose_example_reports_three_policies_and_reuses_constituents(tmp_path, monkeypatch, capsys):
    argv = ["compose.py", "--timesteps", "150", "--compose-steps", "10", "--eval-episodes", "4", "--output-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "compose.py"), run_name="__main__")
    assert (tmp_path / "compose_paths_seed0.png").stat().st_size > 10_000
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    shares = {line.split(":")[0].strip(): float(line.rsplit(":", 1)[1]) for line in lines}
    assert set(shares) == {"up", "down", "composed"} and all(0 <= share <= 1 for share in shares.values())
    saved = sorted(tmp_path.glob("compose_*_seed0_steps150*"))
    assert [path.name for path in saved] == [
        f"compose_{task}_seed0_steps150{suffix}" for task in ("down", "up") for suffix in (".zip", "_buffer.pkl")
    ]
    modified = [path.stat().st_mtime_ns for path in saved]
    runpy.run_path(str(EXAMPLES / "compose.py"), run_name="__main__")  # loads the constituents instead of training
    assert [path.stat().st_mtime_ns for path in saved] == modified
    assert "composed" in capsys.readouterr().out


def test_finetune_example_prints_both_curves(tmp_path, monkeypatch, capsys):
    argv = ["finetune.py", "--pretrain-steps", "150", "--timesteps", "200", "--eval-freq", "100", "--eval-episodes", "2"]
    monkeypatch.setattr(sys, "argv", [*argv, "--output-dir", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "finetune.py"), run_name="__main__")
    assert (tmp_path / "finetune_curve_seed0.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    for name in ("fine-tuned", "from scratch"):
        curve = next(line for line in printed.splitlines() if line.startswith(f"  {name}:"))
        assert [point.split(":")[0] for point in curve.split(": ", 1)[1].split()] == ["100", "200"]
    assert "fine-tuned reaches it at step" in printed


def test_two_passage_maze_example_reports_both_agents_and_draws_the_paths(tmp_path, monkeypatch, capsys):
    argv = ["two_passage_maze.py", "--timesteps", "200", "--blocked-steps", "100", "--eval-episodes", "3"]
    monkeypatch.setattr(sys, "argv", [*argv, "--output-dir", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "two_passage_maze.py"), run_name="__main__")
    assert (tmp_path / "two_passage_maze_seed0.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    for name in ("SQL", "SAC"):
        assert f"{name}, door on the right, after 200 steps" in printed
        assert f"{name}, door moved to the left, after 100 more steps" in printed
    reports = [line for line in printed.splitlines() if line.startswith("  stochastic: goal reached in")]
    assert len(reports) == 4 and all(" of 3 episodes" in line for line in reports)


def test_finish_line_swimmer_example_prints_crossings_and_draws_curves(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mujoco")
    argv = ["finish_line_swimmer.py", "--timesteps", "1100", "--output-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLES / "finish_line_swimmer.py"), run_name="__main__")
    assert (tmp_path / "finish_line_swimmer_seed0.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    for name in ("SQL", "SAC"):
        assert f"{name}: 1 training episodes in 1100 steps" in printed
    assert printed.count("finish line first reached at step:") == 2
