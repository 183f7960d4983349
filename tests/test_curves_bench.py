import csv
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "curves.py"
FIELDS = ("env", "algo", "seed", "timesteps", "deterministic", "stochastic", "wall_s", "train_steps_per_s", "train_s")


def write_cell(folder, env_id, algo, seed, finals, steps=100_000):
    """A cell's CSV with one early row and the final ``(deterministic, stochastic)`` returns."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{env_id}_{algo}_seed{seed}.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, FIELDS)
        writer.writeheader()
        writer.writerow(dict(zip(FIELDS, (env_id, algo, seed, steps // 2, -1.0, -2.0, 1, 50.0, 1), strict=True)))
        writer.writerow(dict(zip(FIELDS, (env_id, algo, seed, steps, *finals, 2, 50.0, 2), strict=True)))


def table(monkeypatch, capsys, *folders, picture):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as `python bench/curves.py` does, for bench/common.py
    monkeypatch.setattr(sys, "argv", ["curves.py", "--results-table", *map(str, folders), "--picture", str(picture)])
    runpy.run_path(str(BENCH), run_name="__main__")
    return {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()}


def test_results_table_gives_mean_and_std_over_seeds_with_the_last_folder_winning(tmp_path, monkeypatch, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    for seed, finals in enumerate([(1000.0, 900.0), (2000.0, 1100.0), (3000.0, 1300.0)]):
        write_cell(old, "Hopper-v5", "SAC", seed, finals)
        write_cell(old, "Hopper-v5", "SQL", seed, (1.0, 1.0))  # replaced by the newer folder's SQL cells
    write_cell(new, "Hopper-v5", "SQL", 0, (2500.0, 500.0))
    write_cell(new, "Hopper-v5", "SQL", 1, (3500.0, 700.0))
    write_cell(new, "Walker2d-v5", "SQL", 0, (400.0, 300.0), steps=50_000)

    rows = table(monkeypatch, capsys, old, new, picture=tmp_path / "results.png")
    assert (tmp_path / "results.png").stat().st_size > 10_000
    assert rows["task"] == [
        "task", "steps", "SQL seeds", "SAC seeds", "SQL deterministic", "SAC deterministic",
        "SQL stochastic", "SAC stochastic", "SQL/SAC deterministic",
    ]  # fmt: skip
    # SQL: mean 3000, sample std 707.1 (sqrt(2 * 500^2)); SAC: mean 2000, std 1000; 3000 / 2000 = 1.50
    assert rows["Hopper-v5"] == [
        "Hopper-v5", "100k", "0,1", "0,1,2", "3000.0 +/- 707.1", "2000.0 +/- 1000.0",
        "600.0 +/- 141.4", "1100.0 +/- 200.0", "1.50",
    ]  # fmt: skip
    # one seed has no spread; a task SAC has not run says so and has no ratio
    assert rows["Walker2d-v5"] == ["Walker2d-v5", "50k", "0", "-", "400.0", "not run", "300.0", "not run", "-"]


def test_sac_hyperparams_replace_rl_zoo3_entry_and_default_to_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))
    algo_kwargs = runpy.run_path(str(BENCH))["algo_kwargs"]
    sql_yaml, sac_yaml = BENCH.parent.parent / "hyperparams" / "sql.yml", tmp_path / "sac.yml"
    sac_yaml.write_text(
        "Humanoid-v5:\n  policy: 'MlpPolicy'\n  learning_starts: 10000\n  batch_size: 128\n"
        '  policy_kwargs: "dict(net_arch=[128, 128])"\n'
    )
    assert algo_kwargs("SAC", "Humanoid-v5", sql_yaml, sac_yaml) == {
        "learning_starts": 10000,
        "batch_size": 128,
        "policy_kwargs": {"net_arch": [128, 128]},
    }
    assert algo_kwargs("SAC", "Humanoid-v5", sql_yaml) == {"learning_starts": 10000}  # rl_zoo3's Humanoid-v4 entry
    assert algo_kwargs("SQL", "Humanoid-v5", sql_yaml, sac_yaml)["ent_coef"] == 0.05  # SQL's yaml is not SAC's


ROOT = BENCH.parent.parent


def documented_results_folders() -> list[str]:
    """The folders of the appendix's ``--results-table`` command (docs/benchmarks.md), in its order."""
    text = ROOT.joinpath("docs", "benchmarks.md").read_text()
    command = text[text.index("(appendix-results)=") :].split("```bash", 1)[1].split("```", 1)[0]
    words = command.replace("\\\n", " ").split()
    return words[words.index("--results-table") + 1 : words.index("--picture")]


def test_documented_results_equal_the_table_of_the_checked_in_csvs(monkeypatch, capsys, tmp_path):
    """The results tables of docs/results.md, the SQL page and the README hold the figures `--results-table` computes."""
    rows = table(monkeypatch, capsys, *(ROOT / folder for folder in documented_results_folders()), picture=tmp_path / "r.png")
    results_page = ROOT.joinpath("docs", "results.md").read_text().splitlines()
    sql_page = ROOT.joinpath("docs", "modules", "sql.md").read_text().splitlines()
    readme = ROOT.joinpath("README.md").read_text().splitlines()
    tasks = ["Pendulum-v1", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5", "Humanoid-v5"]
    for task in tasks:
        _, steps, _, _, sql_det, sac_det, sql_sto, sac_sto, ratio = rows[task]
        page_row = next(line for line in results_page if line.startswith(f"| {task} |"))
        assert page_row.split(" | ")[1] == steps
        assert page_row.split(" | ")[3:] == [sql_det, sac_det, sql_sto, sac_sto, f"{ratio} |"], task
        if task != "Pendulum-v1":  # the SQL page's and the README's tables: MuJoCo, deterministic
            sql_page_row = next(line for line in sql_page if line.startswith(f"| {task} |"))
            assert sql_page_row.strip("| ").split(" | ")[:4] == [task, sql_det, sac_det, ratio], task
            readme_row = next(line for line in readme if line.startswith(f"| {task} |"))
            means = [cell.split(" +/- ")[0] for cell in (sql_det, sac_det)]
            assert readme_row.strip("| ").split(" | ") == [task, *means, ratio], task


def test_picture_has_one_panel_per_chosen_task(tmp_path, monkeypatch, capsys):
    for env_id in ("Hopper-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5"):
        write_cell(tmp_path / "cells", env_id, "SQL", 0, (1.0, 2.0))
    monkeypatch.syspath_prepend(str(BENCH.parent))
    namespace = runpy.run_path(str(BENCH))
    saved = []
    monkeypatch.setattr("matplotlib.figure.Figure.savefig", lambda figure, path, **kwargs: saved.append(figure))
    cells = namespace["merged_cells"]([tmp_path / "cells"])
    namespace["draw_curves"](cells, tmp_path / "p.png", ["Swimmer-v5", "Hopper-v5", "Ant-v5", "Walker2d-v5"])
    visible = [axes for axes in saved[0].axes if axes.get_visible()]
    assert [axes.get_title().split(" (")[0] for axes in visible] == ["Swimmer-v5", "Hopper-v5", "Ant-v5", "Walker2d-v5"]
    assert len(saved[0].axes) == 6  # three to a row: two rows, the last two panels hidden
