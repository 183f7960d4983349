"""sb3_sql.zoo, and rl_zoo3's train, enjoy, optimize and plot_train run as a user types them."""

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from matplotlib import pyplot as plt
from rl_zoo3.plots.plot_train import plot_train
from stable_baselines3.common.monitor import load_results

from sb3_sql import SQL
from sb3_sql.zoo import (
    NET_ARCH,
    ZOO_ONLY_KEYS,
    convert_sql_params,
    default_hyperparams_path,
    load_hyperparams,
    read_zoo_entry,
    register,
    sample_sql_params,
)

REPOSITORY = Path(__file__).resolve().parent.parent
SHIPPED_ENVS = [
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Swimmer-v5",
    "Humanoid-v5",
    "MultiGoal-v0",
    "CartPole-v1",
    "LunarLander-v3",
]
# Reward scales of the reference code (docs/method.md, "Reference hyperparameters"): ent_coef = 1 / reward_scale
# in the shipped entries, except those where a learnt temperature measured better (LEARNT_TEMPERATURE_ENVS).
REFERENCE_REWARD_SCALES = {
    "HalfCheetah-v5": 30,
    "Walker2d-v5": 10,
    "Ant-v5": 300,
}
# Entries with ent_coef "auto": Hopper-v5 (3 seeds at 100k steps, docs/benchmarks.md, "Automatic temperature").
LEARNT_TEMPERATURE_ENVS = ["Hopper-v5"]
# Entries whose fixed temperature was measured here instead of the reference's: Swimmer-v5 (reference 1 / 30)
# on seeds 0-3 and Humanoid-v5 (reference 1 / 100) on seeds 0-2, at 100k steps (docs/benchmarks.md, "Swimmer-v5",
# "Humanoid-v5").
MEASURED_TEMPERATURES = {"Swimmer-v5": 0.01, "Humanoid-v5": 0.05}
# Small budgets: one or two Pendulum episodes, a few hundred gradient steps.
OPTIMIZE_ARGS = "-n 300 -params learning_starts:250 --n-evaluations 1 --eval-episodes 1"


def start_zoo(command: str, cwd: Path) -> subprocess.Popen:
    """Start ``python -m <command>`` as a user would type it, on one torch thread, without a display."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.Popen(
        [sys.executable, "-m", *shlex.split(command)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[str, str]:
    """Wait for a zoo command; fail with its output unless it succeeded. Returns its stdout and stderr."""
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, f"{' '.join(process.args)} failed:\n{stdout}\n{stderr}"
    return stdout, stderr


def run_zoo(command: str, cwd: Path) -> tuple[str, str]:
    return finish(start_zoo(command, cwd))


def test_shipped_hyperparams_cover_the_benchmark_envs_with_valid_sql_arguments():
    with open(default_hyperparams_path()) as file:
        hyperparams = yaml.safe_load(file)
    assert set(SHIPPED_ENVS) <= set(hyperparams)
    sql_arguments = set(inspect.signature(SQL).parameters)
    for env_id, entry in hyperparams.items():
        assert set(entry) - ZOO_ONLY_KEYS <= sql_arguments, env_id
        # A positive temperature, or a learnt one ("auto": checked by SQL itself).
        assert entry["ent_coef"] == "auto" or entry["ent_coef"] > 0, env_id
    for env_id, reward_scale in REFERENCE_REWARD_SCALES.items():
        assert hyperparams[env_id]["ent_coef"] == pytest.approx(1 / reward_scale, rel=1e-5), env_id
    for env_id in LEARNT_TEMPERATURE_ENVS:
        assert hyperparams[env_id]["ent_coef"] == "auto", env_id
    for env_id, ent_coef in MEASURED_TEMPERATURES.items():
        assert hyperparams[env_id]["ent_coef"] == pytest.approx(ent_coef, rel=1e-5), env_id


def test_load_hyperparams_gives_sql_arguments_as_the_zoo_would(tmp_path):
    kwargs = load_hyperparams("Pendulum-v1")
    assert not set(kwargs) & ZOO_ONLY_KEYS
    assert kwargs["ent_coef"] == read_zoo_entry("Pendulum-v1")["ent_coef"]
    SQL("MlpPolicy", "Pendulum-v1", **kwargs)
    (tmp_path / "other.yml").write_text(
        "Pendulum-v1:\n  n_timesteps: 100\n  policy: MlpPolicy\n  n_envs: 2\n"
        "  learning_rate: lin_1e-3\n  policy_kwargs: dict(net_arch=[8])\n"
    )
    kwargs = load_hyperparams("Pendulum-v1", tmp_path / "other.yml")
    assert set(kwargs) == {"learning_rate", "policy_kwargs"}
    assert kwargs["policy_kwargs"] == {"net_arch": [8]}
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3) and kwargs["learning_rate"](0.25) == pytest.approx(2.5e-4)
    with pytest.raises(KeyError, match="has no entry for 'CartPole-v0'"):
        read_zoo_entry("CartPole-v0", tmp_path / "other.yml")


def test_default_hyperparams_are_the_repository_file_in_a_source_checkout():
    assert default_hyperparams_path() == REPOSITORY / "hyperparams" / "sql.yml"


@pytest.mark.parametrize(
    ("sampled", "expected"),
    [
        (
            {"ent_coef": 0.05, "learning_rate": 1e-3, "batch_size_pow": 6, "value_n_particles": 32, "kernel_n_particles": 8}
            | {"net_arch": "small", "target_update": "hard", "target_update_interval": 100},
            {"ent_coef": 0.05, "learning_rate": 1e-3, "batch_size": 64, "value_n_particles": 32, "kernel_n_particles": 8}
            | {"policy_kwargs": {"net_arch": [64, 64]}, "tau": 1.0, "target_update_interval": 100},
        ),
        (
            {"ent_coef": 0.5, "learning_rate": 3e-4, "batch_size_pow": 9, "value_n_particles": 8, "kernel_n_particles": 32}
            | {"net_arch": "big", "target_update": "polyak", "tau": 0.005},
            {"ent_coef": 0.5, "learning_rate": 3e-4, "batch_size": 512, "value_n_particles": 8, "kernel_n_particles": 32}
            | {"policy_kwargs": {"net_arch": [256, 256]}, "tau": 0.005, "target_update_interval": 1},
        ),
    ],
)
def test_convert_sql_params(sampled, expected):
    assert convert_sql_params(sampled) == expected


def test_convert_sql_params_rejects_unknown_choices():
    sampled = {"batch_size_pow": 7, "net_arch": "medium", "target_update": "hard", "target_update_interval": 1000}
    with pytest.raises(ValueError, match="net_arch 'huge'"):
        convert_sql_params({**sampled, "net_arch": "huge"})
    with pytest.raises(ValueError, match="target_update 'soft'"):
        convert_sql_params({**sampled, "target_update": "soft"})


def test_sampler_covers_both_target_updates_and_its_trials_convert_back():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    target_updates = set()
    for _ in range(12):
        trial = study.ask()
        kwargs = sample_sql_params(trial, n_actions=1, n_envs=1, additional_args={})
        # What the zoo does with a stored trial (--trial-id): the same arguments again.
        assert convert_sql_params(trial.params) == kwargs
        assert kwargs["policy_kwargs"]["net_arch"] in NET_ARCH.values()
        assert trial.user_attrs["batch_size"] == kwargs["batch_size"]
        SQL("MlpPolicy", "Pendulum-v1", buffer_size=kwargs["batch_size"], **kwargs)  # accepted by SQL's argument checks
        target_updates.add(trial.params["target_update"])
        study.tell(trial, 0.0)
    assert target_updates == {"hard", "polyak"}


def test_register_refuses_other_modules():
    with pytest.raises(ValueError, match="got json"):
        register(json)


@pytest.fixture(scope="module")
def trained_zoo_run(tmp_path_factory):
    """``python -m rl_zoo3.train --algo sql --env Pendulum-v1 -P``, two episodes with 200 gradient steps."""
    workdir = tmp_path_factory.mktemp("zoo")
    output = run_zoo("rl_zoo3.train --algo sql --env Pendulum-v1 -n 400 -params learning_starts:200 --seed 0 -P", workdir)
    return workdir, output


def test_zoo_train_finds_the_shipped_hyperparams_and_saves_under_logs_sql(trained_zoo_run):
    workdir, (stdout, _) = trained_zoo_run
    assert f"Loading hyperparameters from: {default_hyperparams_path()}" in stdout
    run_dir = workdir / "logs" / "sql" / "Pendulum-v1_1"
    model = SQL.load(run_dir / "Pendulum-v1.zip")
    assert model.num_timesteps == 400
    with open(default_hyperparams_path()) as shipped:
        shipped_ent_coef = yaml.safe_load(shipped)["Pendulum-v1"]["ent_coef"]
    assert model.ent_coef == shipped_ent_coef
    assert model._n_updates == 200
    with open(run_dir / "Pendulum-v1" / "config.yml") as file:
        saved = dict(yaml.load(file, Loader=yaml.UnsafeLoader))
    assert saved["ent_coef"] == shipped_ent_coef and saved["learning_starts"] == 200
    assert list(load_results(str(run_dir))["l"]) == [200, 200]  # monitor file: two episodes


def test_zoo_train_shows_the_progress_bar(trained_zoo_run):
    _, (stdout, stderr) = trained_zoo_run
    assert "400/400" in stdout + stderr


def test_zoo_enjoy_loads_and_runs_the_trained_agent(trained_zoo_run):
    workdir, _ = trained_zoo_run
    stdout, _ = run_zoo("rl_zoo3.enjoy --algo sql --env Pendulum-v1 -f logs/ --no-render -n 500", workdir)
    assert "Loading logs/sql/Pendulum-v1_1/Pendulum-v1.zip" in stdout
    assert "2 Episodes" in stdout
    assert re.search(r"Mean reward: -\d+\.\d+", stdout)


def test_zoo_plot_train_draws_the_training_curve(trained_zoo_run, monkeypatch):
    workdir, _ = trained_zoo_run
    argv = ["plot_train", "--algo", "sql", "--env", "Pendulum-v1", "-f", str(workdir / "logs"), "-w", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(plt, "show", lambda: None)  # keep the figure to look at it
    plot_train()
    (curve,) = plt.gcf().axes[0].get_lines()
    monitor = load_results(str(workdir / "logs" / "sql" / "Pendulum-v1_1"))
    assert curve.get_label() == "Pendulum-v1_1"
    assert list(curve.get_xdata()) == [200, 400]
    assert list(curve.get_ydata()) == pytest.approx(list(monitor["r"]))
    plt.close("all")


def test_zoo_train_reads_a_conf_file(tmp_path):
    with open(default_hyperparams_path()) as file:
        hyperparams = yaml.safe_load(file)
    hyperparams["Pendulum-v1"]["ent_coef"] = 0.5
    (tmp_path / "hyperparams").mkdir()
    with open(tmp_path / "hyperparams" / "sql.yml", "w") as file:
        yaml.safe_dump(hyperparams, file)
    stdout, _ = run_zoo("rl_zoo3.train --algo sql --env Pendulum-v1 -n 200 --conf-file hyperparams/sql.yml", tmp_path)
    assert "Loading hyperparameters from: hyperparams/sql.yml" in stdout
    assert SQL.load(tmp_path / "logs" / "sql" / "Pendulum-v1_1" / "Pendulum-v1.zip").ent_coef == 0.5


@pytest.fixture(params=["sqlite", "postgresql"])
def optuna_storage(request, tmp_path):
    """An optuna RDB storage URL: a SQLite file, or the PostgreSQL server of SB3_SQL_TEST_POSTGRES_URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    url = os.environ.get("SB3_SQL_TEST_POSTGRES_URL")
    if not url:
        message = (
            "no PostgreSQL server configured: run `sudo .ci/start_postgres` and export "
            "SB3_SQL_TEST_POSTGRES_URL=<the URL it prints>"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def test_two_zoo_workers_share_one_optuna_study(optuna_storage, tmp_path):
    study_name = f"sql-pendulum-{uuid.uuid4().hex[:8]}"
    # Created once before the workers start, as `optuna create-study ... --direction maximize` would.
    optuna.create_study(storage=optuna_storage, study_name=study_name, direction="maximize")
    try:
        command = (
            f"rl_zoo3.train --algo sql --env Pendulum-v1 -optimize --n-trials 1 {OPTIMIZE_ARGS} "
            f"--storage {optuna_storage} --study-name {study_name} --no-optim-plots"
        )
        workers = [start_zoo(f"{command} -f worker{index}", tmp_path) for index in range(2)]
        finished_by_worker = []
        for worker in workers:
            _, stderr = finish(worker)
            finished_by_worker.append(sorted(int(number) for number in re.findall(r"Trial (\d+) finished", stderr)))
        study = optuna.load_study(storage=optuna_storage, study_name=study_name)
        complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        assert sorted(trial.number for trial in complete) == [0, 1]
        assert sorted(finished_by_worker) == [[0], [1]]  # one trial each, told by the worker that ran it
        assert all("ent_coef" in trial.params and "target_update" in trial.params for trial in complete)
    finally:
        optuna.delete_study(storage=optuna_storage, study_name=study_name)
