"""Learning curves of SQL and SB3 SAC: evaluation return vs env steps, several seeds, CSV and PNG.

One cell is one (task, algorithm, seed) training run. SQL uses the shipped hyperparameters
(``hyperparams/sql.yml``, or ``--sql-hyperparams``), SAC rl_zoo3's tuned ones (or ``--sac-hyperparams``,
e.g. SAC at SQL's network size and batch); both train for the
task's budget below with one torch thread. SB3's ``EvalCallback`` evaluates every ``eval_freq``
env steps on a separate environment (deterministic actions, as SB3 evaluates by default, and
stochastic ones: SQL's policy is the sampler) and each cell is written to
``<out>/<task>_<algo>_seed<seed>.csv``, the trained model beside it (``.zip``). Cells whose
CSV exists are skipped, so a long benchmark runs one cell (or one task) at a time, in any order
and on any machine, and a final call with
``--plot-only`` gathers every CSV in ``<out>`` into ``<out>/curves.png`` and prints the final
returns (mean and spread over seeds, and SQL/SAC) and the time to return: the env steps and the
training seconds (evaluations excluded, column ``train_s``) until the deterministic return first
reaches the task's threshold in ``THRESHOLDS``.

    python bench/curves.py                                    # every cell, then the plot
    python bench/curves.py --envs HalfCheetah-v5 --algos SQL --seeds 0   # one cell
    python bench/curves.py --plot-only
    python bench/curves.py --envs HalfCheetah-v5 --algos SQL --evaluate-saved 20   # the saved models again
    python bench/curves.py --results-table docs/curves docs/curves/2026-11-30 --picture results.png

``--results-table`` prints the final returns as one Markdown table in the form of sb3-contrib's
algorithm pages (task, steps, seeds, SQL and SAC mean +/- standard deviation over seeds) with the
versions of the libraries; when several folders hold cells of the same task and algorithm, the
last folder's cells are the ones shown (and drawn, with ``--picture``).
"""

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_sql.zoo import default_hyperparams_path, load_hyperparams

from common import ALGOS, TrainingThroughput, rl_zoo_kwargs

# task -> (env steps, evaluation every this many env steps); 100k steps for every MuJoCo task.
TASKS = {
    "Pendulum-v1": (20_000, 1_000),
    **{f"{name}-v5": (100_000, 10_000) for name in ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Swimmer", "Humanoid")},
}
# task -> the deterministic evaluation return whose first reach is timed ("time to return"): HalfCheetah's
# and Hopper's from the MuJoCo issue; the others chosen before their runs, about SAC's return at 100k steps.
THRESHOLDS = {
    "Pendulum-v1": -200.0,
    "HalfCheetah-v5": 3000.0,
    "Hopper-v5": 1000.0,
    "Walker2d-v5": 1000.0,
    "Ant-v5": 1000.0,
    "Swimmer-v5": 40.0,
    "Humanoid-v5": 500.0,
}
FIELDS = ("env", "algo", "seed", "timesteps", "deterministic", "stochastic", "wall_s", "train_steps_per_s", "train_s")
MODES = ("deterministic", "stochastic")


class TimedEvaluations(CallbackList):
    """SB3's ``EvalCallback`` s, with the training seconds (evaluations excluded) at each evaluation in ``train_s``."""

    def __init__(self, callbacks: list[EvalCallback], eval_freq: int):
        super().__init__(callbacks)  # type: ignore[arg-type]
        self.eval_freq = eval_freq

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.start, self.eval_seconds, self.train_s = time.perf_counter(), 0.0, []

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq == 0:  # EvalCallback's own condition: they evaluate in this call
            self.train_s.append(time.perf_counter() - self.start - self.eval_seconds)
        evaluation_start = time.perf_counter()
        keep_going = super()._on_step()
        self.eval_seconds += time.perf_counter() - evaluation_start
        return keep_going


def algo_kwargs(algo: str, env_id: str, sql_hyperparams: Path, sac_hyperparams: Path | None = None) -> dict:
    """Keyword arguments of ``algo`` on ``env_id``: the shipped SQL entry, or SAC's entry in ``sac_hyperparams``
    (an rl_zoo3 yaml) or else rl_zoo3's own (``v5`` from ``v4``)."""
    if algo == "SQL":
        return load_hyperparams(env_id, sql_hyperparams)
    if sac_hyperparams is not None:
        return load_hyperparams(env_id, sac_hyperparams)
    try:
        return rl_zoo_kwargs("sac", env_id)
    except KeyError:  # rl_zoo3 tunes the MuJoCo tasks as v4; v5 has the same dynamics and rewards
        return rl_zoo_kwargs("sac", env_id.replace("-v5", "-v4"))


def cell_path(out: Path, env_id: str, algo: str, seed: int) -> Path:
    return out / f"{env_id}_{algo}_seed{seed}.csv"


def run_cell(
    env_id: str,
    algo: str,
    seed: int,
    out: Path,
    hyperparams: tuple[Path, Path | None],
    eval_episodes: int,
    budget: tuple[int, int],
) -> Path:
    """Train one cell for ``budget = (env steps, evaluation interval)``, evaluating on the way; returns its CSV.

    ``hyperparams`` is (SQL's yaml, SAC's yaml or None for rl_zoo3's).
    """
    timesteps, eval_freq = budget
    kwargs = algo_kwargs(algo, env_id, *hyperparams)
    print(f"{env_id} {algo} seed {seed}: {timesteps} steps, {kwargs}", flush=True)
    model = ALGOS[algo]("MlpPolicy", env_id, seed=seed, **kwargs)
    with tempfile.TemporaryDirectory() as logs:
        evals = {}
        for offset, mode in enumerate(MODES):
            eval_env = Monitor(gym.make(env_id))
            eval_env.reset(seed=10_000 + 100 * seed + offset)
            evals[mode] = EvalCallback(
                eval_env,
                eval_freq=eval_freq,
                n_eval_episodes=eval_episodes,
                log_path=str(Path(logs) / mode),
                deterministic=mode == "deterministic",
                verbose=0,
            )
        timer, timed = TrainingThroughput(), TimedEvaluations(list(evals.values()), eval_freq)
        start = time.perf_counter()
        model.learn(timesteps, callback=CallbackList([timer, timed]))
        wall = time.perf_counter() - start
        results = {mode: np.load(Path(logs) / mode / "evaluations.npz") for mode in MODES}
    path = cell_path(out, env_id, algo, seed)
    model.save(path.with_suffix(".zip"))  # the trained agent, for evaluations after the fact
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(FIELDS)
        for i, steps in enumerate(results["deterministic"]["timesteps"]):
            returns = [results[mode]["results"][i].mean() for mode in MODES]
            timing = (f"{wall:.0f}", f"{timer.steps_per_second:.1f}", f"{timed.train_s[i]:.0f}")
            writer.writerow([env_id, algo, seed, int(steps), *(f"{r:.2f}" for r in returns), *timing])
    print(f"  {path}: final {MODES[0]} {returns[0]:.1f}, {MODES[1]} {returns[1]:.1f} ({wall / 60:.1f} min)", flush=True)
    return path


def read_cells(out: Path) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """Every CSV in ``out``: ``(env, algo) -> seed -> rows``."""
    cells: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for path in sorted(out.glob("*_seed*.csv")):
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        if rows:
            cells.setdefault((rows[0]["env"], rows[0]["algo"]), {})[int(rows[0]["seed"])] = rows
    return cells


def print_time_to_return(cells: dict[tuple[str, str], dict[int, list[dict]]]) -> None:
    """Per cell: env steps and training seconds until the deterministic return first reaches ``THRESHOLDS``.

    Seconds exclude the evaluations (``train_s``; cells written before that column have none).
    """
    print("\ntime to return: first evaluation whose deterministic return reaches the threshold (env steps, train s)")
    for (env_id, algo), seeds in sorted(cells.items()):
        threshold = THRESHOLDS.get(env_id)
        if threshold is None:
            continue
        reached = []
        for seed, rows in sorted(seeds.items()):
            first = next((row for row in rows if float(row["deterministic"]) >= threshold), None)
            seconds = first.get("train_s") if first else None
            reached.append(f"seed {seed}: " + (f"{first['timesteps']} steps, {seconds or '?'} s" if first else "not reached"))
            steps_per_s = rows[-1]["train_steps_per_s"]
            reached[-1] += f" ({steps_per_s} steps/s)"
        print(f"{env_id:>15} {algo} >= {threshold:g}: " + "; ".join(reached))


def merged_cells(folders: list[Path]) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """The cells of several ``--out`` folders; a later folder's cells of a (task, algorithm) replace an earlier one's."""
    cells: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for folder in folders:
        if not folder.is_dir():
            sys.exit(f"{folder} is not a folder of cells (CSV files written by this script)")
        cells.update(read_cells(folder))
    if not cells:
        sys.exit(f"no CSV in {', '.join(map(str, folders))}: run some cells first")
    return cells


def mean_std(values: list[float]) -> str:
    """``mean +/- std`` over seeds (sample standard deviation; none for a single seed)."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} +/- {statistics.stdev(values):.1f}"


def results_table(cells: dict[tuple[str, str], dict[int, list[dict]]]) -> list[str]:
    """Markdown rows: per task, its final evaluation return for SQL and SAC, mean +/- std over seeds, both modes.

    A cell is its CSV's last row; "steps" is the smallest last ``timesteps`` of the task's cells, so a
    shorter cell shows as a smaller budget rather than being compared at another one. The last
    column is SQL's mean deterministic return over SAC's (when SAC's is positive).
    """
    algos = [algo for algo in ALGOS if any(key[1] == algo for key in cells)]
    header = ["task", "steps", *(f"{algo} seeds" for algo in algos)]
    header += [f"{algo} {mode}" for mode in MODES for algo in algos] + ["SQL/SAC deterministic"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = {env_id: index for index, env_id in enumerate(TASKS)}
    for env_id in sorted({env for env, _ in cells}, key=lambda env: (order.get(env, len(order)), env)):
        finals = {
            (algo, mode): [float(rows[-1][mode]) for _, rows in sorted(cells.get((env_id, algo), {}).items())]
            for algo in algos
            for mode in MODES
        }
        steps = min(int(rows[-1]["timesteps"]) for algo in algos for rows in cells.get((env_id, algo), {}).values())
        line = [env_id, f"{steps // 1000}k" if steps % 1000 == 0 else str(steps)]
        line += [",".join(str(seed) for seed in sorted(cells.get((env_id, algo), {}))) or "-" for algo in algos]
        line += [mean_std(finals[algo, mode]) if finals[algo, mode] else "not run" for mode in MODES for algo in algos]
        sql, sac = finals.get(("SQL", "deterministic")), finals.get(("SAC", "deterministic"))
        positive = sql and sac and statistics.mean(sac) > 0
        line.append(f"{statistics.mean(sql) / statistics.mean(sac):.2f}" if positive else "-")
        lines.append("| " + " | ".join(line) + " |")
    return lines


def versions() -> str:
    """The versions of the libraries that the results depend on, one line."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("sb3-sql", "stable-baselines3", "rl_zoo3", "gymnasium", "mujoco", "torch"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def summarize(out: Path) -> None:
    """Print the final returns per task and algorithm and draw ``out/curves.png``."""
    cells = read_cells(out)
    envs = sorted({env for env, _ in cells})
    if not envs:
        sys.exit(f"no CSV in {out}: run some cells first")
    print(f"\nfinal evaluation return (mean over seeds; per seed in brackets), from {out}")
    finals: dict[tuple[str, str, str], float] = {}
    for (env_id, algo), seeds in sorted(cells.items()):
        for mode in MODES:
            per_seed = [float(rows[-1][mode]) for _, rows in sorted(seeds.items())]
            finals[env_id, algo, mode] = statistics.mean(per_seed)
            steps = seeds[min(seeds)][-1]["timesteps"]
            values = ", ".join(f"{v:.1f}" for v in per_seed)
            print(f"{env_id:>15} {algo} {mode:>13} at {steps} steps: {finals[env_id, algo, mode]:8.1f} [{values}]")
    for env_id in envs:
        for mode in MODES:
            if (env_id, "SQL", mode) in finals and (env_id, "SAC", mode) in finals:
                sac = finals[env_id, "SAC", mode]
                ratio = f"{finals[env_id, 'SQL', mode] / sac:.2f}" if sac > 0 else "n/a (SAC's return is not positive)"
                print(f"{env_id:>15} SQL/SAC {mode}: {ratio}")

    print_time_to_return(cells)
    draw_curves(cells, out / "curves.png")


def draw_curves(cells: dict[tuple[str, str], dict[int, list[dict]]], path: Path, envs: list[str] | None = None) -> None:
    """One panel per task, three to a row, into ``path``: per algorithm the mean return over seeds (line) and min-max (band).

    Deterministic evaluations (the results table's ratio) as solid lines, stochastic ones dashed.
    ``envs`` picks and orders the tasks (default: every task of ``cells``, in the order of ``TASKS``).
    """
    from matplotlib.figure import Figure

    order = {env_id: index for index, env_id in enumerate(TASKS)}
    envs = envs or sorted({env for env, _ in cells}, key=lambda env: (order.get(env, len(order)), env))
    columns = min(3, len(envs))
    rows = -(-len(envs) // columns)
    figure = Figure(figsize=(5.5 * columns, 4.2 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    colours = {algo: f"C{index}" for index, algo in enumerate(ALGOS)}
    for axes, env_id in zip(grid.flat, envs, strict=False):
        for algo in ALGOS:
            seeds = cells.get((env_id, algo))
            if not seeds:
                continue
            length = min(len(rows) for rows in seeds.values())
            steps = np.array([int(row["timesteps"]) for row in next(iter(seeds.values()))[:length]])
            for mode, style in zip(MODES, ("-", "--"), strict=True):
                returns = np.array([[float(row[mode]) for row in rows[:length]] for rows in seeds.values()])
                label = f"{algo}, {mode}"
                axes.plot(steps, returns.mean(axis=0), style, color=colours[algo], linewidth=2, label=label)
                if mode == MODES[0]:
                    axes.fill_between(steps, returns.min(axis=0), returns.max(axis=0), color=colours[algo], alpha=0.15)
        seed_counts = ", ".join(f"{algo} {len(cells[env_id, algo])}" for algo in ALGOS if cells.get((env_id, algo)))
        axes.set_title(f"{env_id} (seeds: {seed_counts})", fontsize=14)
        axes.set_xlabel("env steps", fontsize=12)
        axes.set_ylabel("evaluation return", fontsize=12)
        axes.tick_params(labelsize=11)
        axes.ticklabel_format(axis="x", style="sci", scilimits=(3, 3))
        axes.grid(alpha=0.3)
    for axes in grid.flat[len(envs) :]:
        axes.set_visible(False)
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=4, fontsize=12)
    figure.savefig(path, dpi=90)
    print(f"mean over seeds (line; dashed: stochastic evaluation) and min-max of the deterministic one (band): {path}")


def evaluate_saved(out: Path, env_id: str, algo: str, seeds: list[int], episodes: int) -> None:
    """Evaluate each saved final model of ``seeds`` again for ``episodes`` episodes per mode; print the returns."""
    per_mode: dict[str, list[float]] = {mode: [] for mode in MODES}
    for seed in seeds:
        model = ALGOS[algo].load(cell_path(out, env_id, algo, seed).with_suffix(".zip"), device="cpu")
        line = []
        for offset, mode in enumerate(MODES):
            env = Monitor(gym.make(env_id))
            env.reset(seed=20_000 + 100 * seed + offset)  # other episodes than the training's evaluations
            deterministic = mode == "deterministic"
            returns, _ = evaluate_policy(model, env, episodes, deterministic=deterministic, return_episode_rewards=True)
            env.close()
            per_mode[mode].append(float(np.mean(returns)))
            line.append(f"{mode} {np.mean(returns):.1f} (min {np.min(returns):.1f})")
        print(f"{env_id} {algo} seed {seed}, {episodes} episodes: " + ", ".join(line), flush=True)
    for mode, means in per_mode.items():
        print(f"{env_id} {algo} {mode}: mean over seeds {np.mean(means):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/curves"))
    parser.add_argument(
        "--sql-hyperparams", type=Path, default=default_hyperparams_path(), help="rl_zoo3 yaml with SQL's entries"
    )
    parser.add_argument("--sac-hyperparams", type=Path, help="rl_zoo3 yaml with SAC's entries (default: rl_zoo3's sac.yml)")
    parser.add_argument("--timesteps", type=int, help="env steps of each cell instead of the task's budget (pilots)")
    parser.add_argument("--eval-freq", type=int, help="evaluation interval instead of the task's")
    parser.add_argument("--force", action="store_true", help="rerun cells whose CSV exists")
    parser.add_argument("--plot-only", action="store_true", help="run nothing; gather the CSVs in --out")
    parser.add_argument(
        "--results-table",
        type=Path,
        nargs="+",
        metavar="FOLDER",
        help="run nothing; print the Markdown results table of the cells in these folders (a later folder wins)",
    )
    parser.add_argument("--picture", type=Path, help="with --results-table: also draw those cells' curves into this PNG")
    parser.add_argument("--picture-envs", nargs="+", help="with --picture: the tasks to draw, in this order (default: all)")
    parser.add_argument(
        "--evaluate-saved", type=int, metavar="EPISODES", help="train nothing; evaluate the saved models of the cells again"
    )
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.picture and not args.results_table:
        parser.error("--picture draws the cells of --results-table: give the folders there")
    if args.results_table:
        cells = merged_cells(args.results_table)
        print("\n".join(results_table(cells)))
        print(f"\nfinal evaluation return, mean +/- standard deviation over seeds; {versions()}")
        if args.picture:
            draw_curves(cells, args.picture, args.picture_envs)
        return
    args.out.mkdir(parents=True, exist_ok=True)

    if args.evaluate_saved:
        for env_id in args.envs:
            for algo in args.algos:
                evaluate_saved(args.out, env_id, algo, args.seeds, args.evaluate_saved)
        return
    if not args.plot_only:
        for env_id in args.envs:
            for seed in args.seeds:
                for algo in args.algos:
                    if args.force or not cell_path(args.out, env_id, algo, seed).exists():
                        budget = (args.timesteps or TASKS[env_id][0], args.eval_freq or TASKS[env_id][1])
                        if budget[1] > budget[0]:
                            parser.error(f"--eval-freq {budget[1]} exceeds the {budget[0]} steps of {env_id}: no evaluation")
                        hyperparams = (args.sql_hyperparams, args.sac_hyperparams)
                        run_cell(env_id, algo, seed, args.out, hyperparams, args.eval_episodes, budget)
    summarize(args.out)


if __name__ == "__main__":
    main()
