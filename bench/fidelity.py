"""Does SQL's sampler draw from exp(Q / alpha)? Fidelity against known densities.

Two protocols, both measured against an exact density computed by numerical integration:

- ``fixed``: the sampler alone, trained with SQL's own sampler loss (``SQL.sampler_loss``,
  amortized SVGD, Eq. 13-14 of Haarnoja et al., ICML 2017) against a fixed analytic soft
  Q-function ``Q(a)`` of a one-state task; the target is ``p(a) ~ exp(Q(a) / alpha)`` on the
  action box ``[-1, 1]^D``.
- ``bandit``: full SQL on a one-step bandit whose reward is ``Q(a)`` (the critic is learnt, then
  the sampler follows it); the target is the same ``exp(r(a) / alpha)``.

For each target and temperature it reports the total variation (TV) distance between the
histograms of 20,000 sampler draws and of the exact density (10 bins per dimension; for the
6-D target, the 64 orthants), the mass of each mode against the exact mass, the share of draws in
the target's empty region (its least dense cells, holding 1% of the exact mass), and the entropy
(nats) of the sampler (Kozachenko-Leonenko nearest-neighbour estimate on the draws) against the
exact differential entropy. One picture per target (draws over the exact density) goes to
``--out``.

    python bench/fidelity.py                                   # every target, the defaults, 3 seeds
    python bench/fidelity.py --targets four_modes --sql-kwargs '{"kernel_n_particles": 32}'
    python bench/fidelity.py --protocol bandit --targets four_modes
"""

import argparse
import csv
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from sb3_sql import SQL

N_DRAWS = 20_000
HIST_BINS = 10  # per dimension, over [-1, 1]
GRID = 400  # integration points per dimension for the exact density (D <= 2)
#: The "empty region" of a target: its least dense cells, together holding this share of the exact mass.
EMPTY_MASS = 0.01


def log_gaussian_mixture(actions: th.Tensor, means: list[list[float]], weights: list[float], std: float) -> th.Tensor:
    """``log sum_k w_k N(a; mu_k, std^2 I)`` for actions ``[..., D]``; returns ``[...]``."""
    means_t = th.tensor(means, dtype=actions.dtype, device=actions.device)  # [modes, D]
    log_w = th.log(th.tensor(weights, dtype=actions.dtype, device=actions.device))
    sq = (actions.unsqueeze(-2) - means_t).pow(2).sum(-1)  # [..., modes]
    dim = actions.shape[-1]
    log_n = -0.5 * sq / std**2 - dim * math.log(std * math.sqrt(2 * math.pi))
    return th.logsumexp(log_w + log_n, dim=-1)


def gaussian_bumps(actions: th.Tensor, means: list[list[float]], std: float) -> th.Tensor:
    """``sum_k exp(-||a - mu_k||^2 / (2 std^2))`` for actions ``[..., D]``; returns ``[...]``."""
    means_t = th.tensor(means, dtype=actions.dtype, device=actions.device)  # [modes, D]
    return th.exp(-0.5 * (actions.unsqueeze(-2) - means_t).pow(2).sum(-1) / std**2).sum(-1)


@dataclass
class Target:
    """A soft Q-function ``q(a)`` (reward units) on ``[-1, 1]^dim``; the target density is ``exp(q / alpha)``.

    ``modes`` maps a mode's name to a function of the actions ``[N, dim]`` telling which belong to it.
    ``factorised`` targets are sums of one 1-D function per dimension (exact values per dimension).
    """

    name: str
    dim: int
    q: Callable[[th.Tensor], th.Tensor]
    alphas: tuple[float, ...]
    modes: dict[str, Callable[[np.ndarray], np.ndarray]]
    factorised: bool = False


def _quadrants() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    return {
        f"({sx:+d},{sy:+d})": (lambda a, sx=sx, sy=sy: (np.sign(a[:, 0]) == sx) & (np.sign(a[:, 1]) == sy))
        for sx, sy in itertools.product((1, -1), repeat=2)
    }


FOUR_MEANS = [[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]
BIMODAL_1D = {"means": [[-0.5], [0.5]], "weights": [0.5, 0.5], "std": 0.15}

TARGETS = {
    # Two modes of unequal weight (0.7 / 0.3 at alpha = 1).
    "two_modes_1d": Target(
        "two_modes_1d",
        1,
        lambda a: log_gaussian_mixture(a, [[-0.5], [0.5]], [0.7, 0.3], 0.1),
        (1.0, 0.5),
        {"a<0": lambda a: a[:, 0] < 0, "a>0": lambda a: a[:, 0] > 0},
    ),
    # Four sharp modes, one per quadrant: the target of the fidelity issue.
    "four_modes": Target(
        "four_modes", 2, lambda a: log_gaussian_mixture(a, FOUR_MEANS, [0.25] * 4, 0.1), (1.0, 0.5), _quadrants()
    ),
    # The fidelity issue's bandit: a reward of four Gaussian bumps of height 1 (one per quadrant) on
    # a flat floor; at alpha 0.1 the bumps hold 98% of the mass.
    "four_bumps": Target("four_bumps", 2, lambda a: gaussian_bumps(a, FOUR_MEANS, 0.1), (0.1, 0.2), _quadrants()),
    # A ring of radius 0.6: no isolated modes, mass on a curve; "modes" are the four quadrants.
    "ring": Target("ring", 2, lambda a: -0.5 * ((a.norm(dim=-1) - 0.6) / 0.08).pow(2), (1.0, 0.5), _quadrants()),
    # Mass pressed against the edge a_0 = 1 of the box.
    "edge": Target(
        "edge",
        2,
        lambda a: log_gaussian_mixture(a, [[0.95, 0.0]], [1.0], 0.15),
        (1.0, 0.5),
        {"a0>0.8": lambda a: a[:, 0] > 0.8, "a0<=0.8": lambda a: a[:, 0] <= 0.8},
    ),
    # A product of six 1-D bimodals: 64 modes (the orthants).
    "bimodal_6d": Target(
        "bimodal_6d",
        6,
        lambda a: log_gaussian_mixture(a.unsqueeze(-1), **BIMODAL_1D).sum(-1),
        (1.0, 0.5),
        {f"a{d}>0": (lambda a, d=d: a[:, d] > 0) for d in range(6)},
        factorised=True,
    ),
}


class AnalyticQ(th.nn.Module):
    """A critic's Q-network stand-in: the input is ``[features, actions]``, the output ``q(actions)``, ``[..., 1]``."""

    def __init__(self, q: Callable[[th.Tensor], th.Tensor], action_dim: int):
        super().__init__()
        self.q, self.action_dim = q, action_dim

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        return self.q(q_input[..., -self.action_dim :]).unsqueeze(-1)


class OneStateBandit(gym.Env):
    """One state (observation 0), one step: the reward of action ``a`` is ``q(a)``, then the episode ends."""

    def __init__(self, q: Callable[[th.Tensor], th.Tensor], dim: int):
        self.q = q
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reward = float(self.q(th.as_tensor(action, dtype=th.float64).unsqueeze(0)))
        return np.zeros(1, np.float32), reward, True, False, {}


# ---------------------------------------------------------------------------------------- exact values
def exact_1d(q: Callable[[th.Tensor], th.Tensor], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact density on a fine 1-D grid: (points ``[GRID]``, normalised density)."""
    points = np.linspace(-1, 1, GRID * 10 + 1)[:-1] + 1.0 / (GRID * 10)
    log_p = q(th.as_tensor(points, dtype=th.float64).unsqueeze(-1)).numpy() / alpha
    density = np.exp(log_p - log_p.max())
    return points, density / (density.sum() * (2.0 / points.size))


def exact_2d(q: Callable[[th.Tensor], th.Tensor], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact density on a ``GRID x GRID`` grid of cell centres: (points ``[GRID, GRID, 2]``, density)."""
    axis = np.linspace(-1, 1, GRID + 1)[:-1] + 1.0 / GRID
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    log_p = q(th.as_tensor(points, dtype=th.float64)).numpy() / alpha
    density = np.exp(log_p - log_p.max())
    return points, density / (density.sum() * (2.0 / GRID) ** 2)


def entropy_of(density: np.ndarray, cell_volume: float) -> float:
    """Differential entropy (nats) of a density tabulated on cells of ``cell_volume``."""
    mass = density * cell_volume
    inside = density > 0
    return float(-(mass[inside] * np.log(density[inside])).sum())


def kozachenko_leonenko_entropy(samples: np.ndarray, k: int = 1) -> float:
    """Kozachenko-Leonenko k-nearest-neighbour estimate of the differential entropy (nats) of ``[N, D]`` samples."""
    n, dim = samples.shape
    distances, _ = cKDTree(samples).query(samples, k=k + 1)
    radius = np.maximum(distances[:, k], 1e-12)
    log_unit_ball = dim / 2 * math.log(math.pi) - gammaln(dim / 2 + 1)
    return float(digamma(n) - digamma(k) + log_unit_ball + dim * np.mean(np.log(radius)))


def exact_reference(target: Target, alpha: float) -> dict:
    """Exact histogram (``HIST_BINS`` per dimension, or orthants in 6-D), mode masses and entropy."""
    if target.dim == 1 or target.factorised:
        q_1d = target.q if target.dim == 1 else (lambda a: log_gaussian_mixture(a, **BIMODAL_1D))
        points, density = exact_1d(q_1d, alpha)
        mass = density * (2.0 / points.size)
        entropy_1d = entropy_of(density, 2.0 / points.size)
        positive = mass[points > 0].sum()
        if target.dim == 1:
            hist = mass.reshape(HIST_BINS, -1).sum(1)
            modes = {name: float(mass[rule(points[:, None])].sum()) for name, rule in target.modes.items()}
            return {
                "hist": hist,
                "modes": modes,
                "entropy": entropy_1d,
                "grid": (points, density),
                "empty": empty_cells(mass),
            }
        # Orthant masses of the product: prod_d (p+ or p-).
        orthants = np.array(
            [
                np.prod([positive if bit else 1 - positive for bit in bits])
                for bits in itertools.product((0, 1), repeat=target.dim)
            ]
        )
        modes = {name: float(positive) for name in target.modes}
        return {"hist": orthants, "modes": modes, "entropy": target.dim * entropy_1d, "grid": (points, density)}
    points, density = exact_2d(target.q, alpha)
    mass = density * (2.0 / GRID) ** 2
    step = GRID // HIST_BINS
    hist = mass.reshape(HIST_BINS, step, HIST_BINS, step).sum(axis=(1, 3)).ravel()
    flat = points.reshape(-1, 2)
    modes = {name: float(mass.ravel()[rule(flat)].sum()) for name, rule in target.modes.items()}
    return {
        "hist": hist,
        "modes": modes,
        "entropy": entropy_of(density, (2.0 / GRID) ** 2),
        "grid": (points, density),
        "empty": empty_cells(mass),
    }


def empty_cells(mass: np.ndarray) -> np.ndarray:
    """The least dense grid cells that together hold ``EMPTY_MASS`` of the exact mass (same shape as ``mass``)."""
    order = np.argsort(mass, axis=None)
    inside = np.cumsum(mass.ravel()[order]) <= EMPTY_MASS
    empty = np.zeros(mass.size, dtype=bool)
    empty[order[inside]] = True
    return empty.reshape(mass.shape)


def empty_region_mass(exact: dict, actions: np.ndarray) -> float:
    """Share of the draws in the target's empty region (exact share: at most ``EMPTY_MASS``); NaN in 6-D.

    Mass there is what the sampler puts where the target has almost none, e.g. on the ridges a
    continuous sampler draws between separated modes.
    """
    if "empty" not in exact:
        return float("nan")
    empty = exact["empty"]
    cells = np.clip(((actions + 1) / 2 * empty.shape[0]).astype(int), 0, empty.shape[0] - 1)  # [N, D]
    return float(empty[tuple(cells.T)].mean())


def sample_histogram(target: Target, actions: np.ndarray) -> np.ndarray:
    """Histogram of the draws, normalised: ``HIST_BINS`` per dimension (D <= 2) or the 2^D orthants."""
    if target.factorised:
        codes = (actions > 0).astype(int) @ (2 ** np.arange(target.dim)[::-1])
        return np.bincount(codes, minlength=2**target.dim) / len(actions)
    bins = np.clip(((actions + 1) / 2 * HIST_BINS).astype(int), 0, HIST_BINS - 1)
    codes = bins[:, 0] * HIST_BINS + bins[:, 1] if target.dim == 2 else bins[:, 0]
    return np.bincount(codes, minlength=HIST_BINS**target.dim) / len(actions)


# ---------------------------------------------------------------------------------------- training
#: Uniform random actions before learning on the bandit: with SQL's default 100 the critic's first fit
#: missed modes and the sampler collapsed onto one (four_modes, seed 0: TV 0.750; with 1000: 0.153).
BANDIT_LEARNING_STARTS = 1000


def make_model(target: Target, alpha: float, seed: int, sql_kwargs: dict) -> SQL:
    env = OneStateBandit(target.q, target.dim)
    kwargs = {"learning_starts": BANDIT_LEARNING_STARTS, "verbose": 0, **sql_kwargs}
    return SQL("MlpPolicy", env, ent_coef=alpha, seed=seed, **kwargs)


def train_fixed(model: SQL, target: Target, steps: int) -> None:
    """Train the sampler alone against the fixed analytic ``q`` with SQL's sampler loss."""
    model.critic.q_networks = th.nn.ModuleList([AnalyticQ(target.q, target.dim)])
    observations = th.zeros(model.batch_size, 1)
    for _ in range(steps):
        loss, _, _ = model.sampler_loss(observations, model.ent_coef)
        model.actor.optimizer.zero_grad()
        loss.backward()
        model.actor.optimizer.step()


def draw(model: SQL, n: int = N_DRAWS) -> np.ndarray:
    with th.no_grad():
        return model.actor.pre_tanh_particles(th.zeros(1, 1), n).tanh()[0].double().numpy()


def evaluate(target: Target, alpha: float, actions: np.ndarray, exact: dict) -> dict:
    hist = sample_histogram(target, actions)
    modes = {name: float(rule(actions).mean()) for name, rule in target.modes.items()}
    return {
        "tv": 0.5 * float(np.abs(hist - exact["hist"]).sum()),
        "max_mode_error": max(abs(modes[name] - exact["modes"][name]) for name in modes),
        "empty_region_mass": empty_region_mass(exact, actions),
        "modes": modes,
        "entropy_kl": kozachenko_leonenko_entropy(actions),
        "entropy_exact": exact["entropy"],
    }


def picture(target: Target, alpha: float, actions: np.ndarray, exact: dict, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 4))
    axes = figure.add_subplot()
    points, density = exact["grid"]
    if target.dim == 1:
        axes.hist(actions[:, 0], bins=100, range=(-1, 1), density=True, alpha=0.5, label="sampler")
        axes.plot(points, density, "k", label="exact")
        axes.legend()
    else:
        if target.factorised:  # the 2-D marginal of the first two dimensions
            density = np.outer(density, density)
            extent_points = points
        else:
            extent_points = points[:, 0, 0]
        axes.imshow(density.T, origin="lower", extent=(-1, 1, -1, 1), cmap="Greys", aspect="equal")
        shown = actions[:2000]
        axes.scatter(shown[:, 0], shown[:, 1], s=1, c="tab:red", alpha=0.5)
        del extent_points
    axes.set_title(title, fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")


def exact_draws(target: Target, alpha: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from the exact density (a grid cell by its mass, then uniformly inside it), ``[n, dim]``."""
    if target.dim == 1 or target.factorised:
        q_1d = target.q if target.dim == 1 else (lambda a: log_gaussian_mixture(a, **BIMODAL_1D))
        points, density = exact_1d(q_1d, alpha)
        width = 2.0 / points.size
        cells = rng.choice(points.size, size=(n, target.dim), p=density / density.sum())
        return points[cells] + rng.uniform(-width / 2, width / 2, size=(n, target.dim))
    points, density = exact_2d(target.q, alpha)
    flat = points.reshape(-1, 2)
    cells = rng.choice(len(flat), size=n, p=density.ravel() / density.sum())
    return flat[cells] + rng.uniform(-1.0 / GRID, 1.0 / GRID, size=(n, 2))


def estimator_table(targets: list[str], alphas: list[float] | None) -> None:
    """The nearest-neighbour entropy estimate (``sb3_sql.entropy``) against the exact entropy, on exact draws.

    Per state SQL sees ``K`` particles: the estimate is averaged over 500 sets of ``K`` draws, for
    ``K`` = 16 and 32 (SQL's reference and default), and given for 20,000 draws in one set.
    """
    from sb3_sql.entropy import kozachenko_leonenko_entropy

    rng = np.random.default_rng(0)
    print(f"{'target':>13} {'alpha':>5} {'exact':>7} {'K=16':>7} {'K=32':>7} {'N=20000':>8}   (nats)")
    for name in targets:
        target = TARGETS[name]
        for alpha in alphas or target.alphas:
            exact = exact_reference(target, alpha)["entropy"]
            draws = th.as_tensor(exact_draws(target, alpha, 16_000, rng))
            per_k = [kozachenko_leonenko_entropy(draws[: 500 * k].reshape(500, k, -1)).mean().item() for k in (16, 32)]
            full = kozachenko_leonenko_entropy(th.as_tensor(exact_draws(target, alpha, N_DRAWS, rng))).item()
            print(f"{name:>13} {alpha:>5} {exact:7.3f} {per_k[0]:7.3f} {per_k[1]:7.3f} {full:8.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--protocol", choices=("fixed", "bandit"), default="fixed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alphas", type=float, nargs="+", help="temperatures (default: each target's)")
    parser.add_argument("--steps", type=int, help="sampler steps (fixed, default 3000) or env steps (bandit, default 12000)")
    parser.add_argument(
        "--sql-kwargs", type=json.loads, default={}, help="SQL keyword arguments as JSON, e.g. '{\"kernel_n_particles\": 32}'"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/fidelity"))
    parser.add_argument("--no-pictures", action="store_true")
    parser.add_argument("--estimator", action="store_true", help="only the entropy estimator table (no training)")
    args = parser.parse_args()
    if args.estimator:
        estimator_table(args.targets, args.alphas)
        return
    th.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    # The protocol of the documented figures (docs/benchmarks.md): 3000 sampler steps, 12000 env steps.
    steps = args.steps or (3000 if args.protocol == "fixed" else 12000)

    rows = []
    print(f"protocol {args.protocol}, {steps} steps, SQL kwargs {args.sql_kwargs}")
    header = ("target", 13), ("alpha", 5), ("seed", 4), ("TV", 6), ("mode err", 8), ("empty", 6), ("H sampler", 9)
    print(" ".join(f"{name:>{width}}" for name, width in header) + f" {'H exact':>8} {'s':>5}")
    for name in args.targets:
        target = TARGETS[name]
        for alpha in args.alphas or target.alphas:
            exact = exact_reference(target, alpha)
            for seed in args.seeds:
                start = time.perf_counter()
                model = make_model(target, alpha, seed, args.sql_kwargs)
                if args.protocol == "fixed":
                    train_fixed(model, target, steps)
                else:
                    model.learn(steps)
                actions = draw(model)
                result = evaluate(target, alpha, actions, exact)
                seconds = time.perf_counter() - start
                print(
                    f"{name:>13} {alpha:>5} {seed:>4} {result['tv']:6.3f} {result['max_mode_error']:8.3f} "
                    f"{result['empty_region_mass']:6.3f} "
                    f"{result['entropy_kl']:9.3f} {result['entropy_exact']:8.3f} {seconds:5.0f}",
                    flush=True,
                )
                rows.append(
                    {
                        "target": name,
                        "alpha": alpha,
                        "seed": seed,
                        "protocol": args.protocol,
                        "steps": steps,
                        "sql_kwargs": json.dumps(args.sql_kwargs),
                        **{k: v for k, v in result.items() if k != "modes"},
                        "modes": json.dumps(result["modes"]),
                        "exact_modes": json.dumps(exact["modes"]),
                    }
                )
                if seed == args.seeds[0] and not args.no_pictures:
                    title = f"{name}, alpha {alpha}, {args.protocol}: TV {result['tv']:.3f}"
                    picture(target, alpha, actions, exact, args.out / f"{name}_alpha{alpha}_{args.protocol}.png", title)
            tvs = [row["tv"] for row in rows if row["target"] == name and row["alpha"] == alpha]
            errors = [row["max_mode_error"] for row in rows if row["target"] == name and row["alpha"] == alpha]
            print(f"{name:>13} {alpha:>5} median TV {statistics.median(tvs):.3f}, max mode error {max(errors):.3f}")
    csv_path = args.out / f"fidelity_{args.protocol}.csv"
    if csv_path.exists():
        with open(csv_path, newline="") as file:
            if next(csv.reader(file), None) != list(rows[0]):  # written before a column was added
                csv_path = csv_path.with_name(f"fidelity_{args.protocol}_{int(time.time())}.csv")
    with open(csv_path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        if file.tell() == 0:
            writer.writeheader()
        writer.writerows(rows)
    print(f"appended to {csv_path}")


if __name__ == "__main__":
    main()
