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
exact differential entropy. It also scores the policy's own stochastic actions (``TV act``: the
same as the sampler's unless ``acting_n_candidates`` corrects them when acting; ``--acting-candidates``
scores several values on one trained model), and gives ``q`` at the deterministic action
(``predict(deterministic=True)``) and at the sampler's zero-noise action against the best mode's.
One picture per target (draws over the exact density) goes to ``--out``.

Contextual targets (``--contextual``): a 1-D state ``s`` uniform on ``[-1, 1]`` and 2-D actions, with
modes that move and reweight with the state (``rotating_bumps``). The sampler serves every state;
the table gives the mean and the worst TV over 13 states (``CONTEXT_STATES``) and the largest error of
a mode's mass, for the sampler and for the policy's actions.

    python bench/fidelity.py                                   # every target, the defaults, 3 seeds
    python bench/fidelity.py --targets --acting-candidates 0 16 64   # the contextual table only
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
    # Two modes of equal height and widths 1:4 (standard deviations 0.04 and 0.16 at alpha = 1): the
    # exact masses are 0.2 / 0.8 at every temperature; the narrow mode is the one a sampler starves.
    "unequal_widths": Target(
        "unequal_widths",
        1,
        lambda a: th.logsumexp(
            th.stack([-0.5 * ((a[..., 0] + 0.5) / 0.04).pow(2), -0.5 * ((a[..., 0] - 0.3) / 0.16).pow(2)]), dim=0
        ),
        (1.0, 0.5),
        {"narrow": lambda a: a[:, 0] < -0.2, "wide": lambda a: a[:, 0] >= -0.2},
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


def draw(model: SQL, n: int = N_DRAWS, state: float = 0.0) -> np.ndarray:
    """``n`` draws of the sampler alone at ``state``, ``[n, D]`` in ``[-1, 1]^D``."""
    with th.no_grad():
        return model.actor.pre_tanh_particles(th.full((1, 1), state), n).tanh()[0].double().numpy()


#: States per call of the policy when drawing its actions (bounds the memory of an acting-time correction).
ACTING_CHUNK = 2000


def draw_acting(model: SQL, n: int = N_DRAWS, state: float = 0.0) -> np.ndarray:
    """``n`` stochastic actions of the policy at ``state`` (``SVGDPolicy._predict``), ``[n, D]`` in ``[-1, 1]^D``.

    The same distribution as :func:`draw` unless the policy corrects its sampler when acting.
    """
    with th.no_grad():
        chunks = [
            model.policy._predict(th.full((min(ACTING_CHUNK, n - start), 1), state), deterministic=False)
            for start in range(0, n, ACTING_CHUNK)
        ]
    return th.cat(chunks).double().numpy()


def deterministic_q(model: SQL, q: Callable[[th.Tensor], th.Tensor], state: float = 0.0) -> dict:
    """``q`` at the deterministic actions: the policy's (``predict(deterministic=True)``) and the sampler's at ``xi = 0``."""
    observation = th.full((1, 1), state)
    with th.no_grad():
        policy_action = model.policy._predict(observation, deterministic=True).double()  # [1, D]
        zero_noise_action = model.actor(observation, deterministic=True).double()
    return {"q_deterministic": float(q(policy_action)[0]), "q_zero_noise": float(q(zero_noise_action)[0])}


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


def deterministic_q_by_particles(model: SQL, q: Callable[[th.Tensor], th.Tensor], particles: list[int]) -> dict:
    """``q`` at ``predict(deterministic=True)`` for each ``deterministic_n_particles`` in ``particles`` (then restored)."""
    own = model.policy.deterministic_n_particles
    values = {}
    for n_particles in particles:
        model.policy.deterministic_n_particles = n_particles
        values[n_particles] = round(deterministic_q(model, q)["q_deterministic"], 4)
    model.policy.deterministic_n_particles = own
    return values


def best_q(target: Target) -> float:
    """The largest value of ``q`` on the integration grid (reward units): the best mode's."""
    if target.dim == 1 or target.factorised:
        q_1d = target.q if target.dim == 1 else (lambda a: log_gaussian_mixture(a, **BIMODAL_1D))
        points = th.linspace(-1, 1, GRID * 10 + 1, dtype=th.float64).unsqueeze(-1)
        return target.dim * float(q_1d(points).max())
    axis = th.linspace(-1, 1, GRID + 1, dtype=th.float64)
    return float(target.q(th.stack(th.meshgrid(axis, axis, indexing="ij"), dim=-1)).max())


# ---------------------------------------------------------------------------------------- contextual targets
#: The states at which a contextual target is scored; training states are uniform on ``[-1, 1]``.
CONTEXT_STATES = np.linspace(-1.0, 1.0, 13)


@dataclass
class ContextualTarget:
    """A soft Q-function ``q(s, a)`` (reward units) of a 1-D state ``s`` in ``[-1, 1]`` and 2-D actions.

    ``q`` maps states ``[..., 1]`` and actions ``[..., 2]`` to ``[...]``; the target density at ``s`` is
    ``exp(q(s, .) / alpha)`` on ``[-1, 1]^2``. ``centres(s)`` gives the modes' centres ``[modes, 2]``:
    an action belongs to the mode of the nearest centre.
    """

    name: str
    q: Callable[[th.Tensor, th.Tensor], th.Tensor]
    centres: Callable[[th.Tensor], th.Tensor]
    alphas: tuple[float, ...]


def rotating_centres(states: th.Tensor) -> th.Tensor:
    """Three centres at radius 0.55, 120 degrees apart, turned by ``60 * s`` degrees: ``[..., 3, 2]`` for ``[..., 1]``."""
    angles = 2 * math.pi / 3 * th.arange(3, dtype=states.dtype) + math.pi / 3 * states  # [..., 3]
    return 0.55 * th.stack([angles.cos(), angles.sin()], dim=-1)


def rotating_bumps(states: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """Three Gaussian bumps (std 0.15) on a flat floor, ``[...]``.

    They turn with ``s``; bump ``k`` has the height ``1 + 0.5 sin(pi s + 2 pi k / 3)``.
    """
    phases = math.pi * states + 2 * math.pi / 3 * th.arange(3, dtype=states.dtype)  # [..., 3]
    heights = 1.0 + 0.5 * phases.sin()
    squared = (actions.unsqueeze(-2) - rotating_centres(states)).pow(2).sum(-1)  # [..., 3]
    return (heights * th.exp(-0.5 * squared / 0.15**2)).sum(-1)


CONTEXTUAL_TARGETS = {
    # The contextual bandit of the fidelity issue's kind: three bumps that move and reweight with the
    # state. At alpha 0.25 the bumps' share of the mass ranges from 0.75 to 0.97 over the states.
    "rotating_bumps": ContextualTarget("rotating_bumps", rotating_bumps, rotating_centres, (0.25,)),
}


class ContextualAnalyticQ(th.nn.Module):
    """A Q-network stand-in for a contextual target: the input is ``[state, actions]``, the output ``q``, ``[..., 1]``."""

    def __init__(self, q: Callable[[th.Tensor, th.Tensor], th.Tensor]):
        super().__init__()
        self.q = q

    def forward(self, q_input: th.Tensor) -> th.Tensor:
        return self.q(q_input[..., :1], q_input[..., 1:]).unsqueeze(-1)


class ContextualBandit(gym.Env):
    """One step per episode at a state ``s ~ U(-1, 1)`` (the observation); the reward of action ``a`` is ``q(s, a)``."""

    def __init__(self, q: Callable[[th.Tensor, th.Tensor], th.Tensor]):
        self.q = q
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.state = np.zeros(1, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-1.0, 1.0, size=1).astype(np.float32)
        return self.state, {}

    def step(self, action):
        state = th.as_tensor(self.state, dtype=th.float64)
        reward = float(self.q(state, th.as_tensor(action, dtype=th.float64)))
        return self.state, reward, True, False, {}


def contextual_exact(target: ContextualTarget, alpha: float, state: float) -> dict:
    """Exact histogram (``HIST_BINS`` per dimension) and mode masses of ``exp(q(state, .) / alpha)``."""
    points, density = exact_2d(lambda a: target.q(th.full((*a.shape[:-1], 1), state, dtype=a.dtype), a), alpha)
    mass = density * (2.0 / GRID) ** 2
    step = GRID // HIST_BINS
    hist = mass.reshape(HIST_BINS, step, HIST_BINS, step).sum(axis=(1, 3)).ravel()
    modes = np.bincount(nearest_mode(target, state, points.reshape(-1, 2)), weights=mass.ravel(), minlength=3)
    return {"hist": hist, "modes": modes, "grid": (points, density)}


def nearest_mode(target: ContextualTarget, state: float, actions: np.ndarray) -> np.ndarray:
    """Index of the nearest centre at ``state`` for actions ``[N, 2]``, ``[N]``."""
    centres = target.centres(th.tensor([state], dtype=th.float64)).numpy()  # [modes, 2]
    return ((actions[:, None, :] - centres) ** 2).sum(-1).argmin(-1)


def contextual_scores(target: ContextualTarget, exact: dict, state: float, actions: np.ndarray) -> tuple[float, float]:
    """TV distance of the draws' histogram from the exact one, and the largest mode-mass error, at ``state``."""
    bins = np.clip(((actions + 1) / 2 * HIST_BINS).astype(int), 0, HIST_BINS - 1)
    hist = np.bincount(bins[:, 0] * HIST_BINS + bins[:, 1], minlength=HIST_BINS**2) / len(actions)
    modes = np.bincount(nearest_mode(target, state, actions), minlength=3) / len(actions)
    return 0.5 * float(np.abs(hist - exact["hist"]).sum()), float(np.abs(modes - exact["modes"]).max())


def train_fixed_contextual(model: SQL, target: ContextualTarget, steps: int) -> None:
    """Train the sampler alone against the fixed analytic ``q(s, a)``, on states drawn uniformly from ``[-1, 1]``."""
    model.critic.q_networks = th.nn.ModuleList([ContextualAnalyticQ(target.q)])
    for _ in range(steps):
        observations = 2.0 * th.rand(model.batch_size, 1) - 1.0
        loss, _, _ = model.sampler_loss(observations, model.ent_coef)
        model.actor.optimizer.zero_grad()
        loss.backward()
        model.actor.optimizer.step()


def acting_settings(model: SQL, candidates: list[int] | None) -> list[int]:
    """The values of ``acting_n_candidates`` to score the policy's actions with (default: the model's own)."""
    return candidates if candidates is not None else [model.policy.acting_n_candidates]


def contextual_table(args: argparse.Namespace, steps: int, n_draws: int) -> list[dict]:
    """Train on each contextual target and score the sampler's and the policy's draws at ``CONTEXT_STATES``.

    The policy's draws are scored once per value of ``--acting-candidates``, on the same trained model.
    """
    rows = []
    print(f"contextual targets: TV and mode-mass error at {len(CONTEXT_STATES)} states, {n_draws} draws each")
    header = "target", "alpha", "seed", "TV sampler", "worst", "M", "TV acting", "worst", "mode err", "s"
    print("{:>14} {:>5} {:>4} {:>10} {:>6} {:>4} {:>9} {:>6} {:>8} {:>5}".format(*header))
    for name in args.contextual:
        target = CONTEXTUAL_TARGETS[name]
        for alpha in args.alphas or target.alphas:
            exact = {float(state): contextual_exact(target, alpha, float(state)) for state in CONTEXT_STATES}
            for seed in args.seeds:
                start = time.perf_counter()
                env = ContextualBandit(target.q)
                kwargs = {"learning_starts": BANDIT_LEARNING_STARTS, "verbose": 0, **args.sql_kwargs}
                model = SQL("MlpPolicy", env, ent_coef=alpha, seed=seed, **kwargs)
                if args.protocol == "fixed":
                    train_fixed_contextual(model, target, steps)
                else:
                    model.learn(steps)
                sampler = [contextual_scores(target, exact[s], s, draw(model, n_draws, s)) for s in exact]
                for n_candidates in acting_settings(model, args.acting_candidates):
                    model.policy.acting_n_candidates = n_candidates
                    acting = [contextual_scores(target, exact[s], s, draw_acting(model, n_draws, s)) for s in exact]
                    row = {
                        **run_columns(name, alpha, seed, args, steps),
                        "tv_sampler": float(np.mean([tv for tv, _ in sampler])),
                        "worst_tv_sampler": max(tv for tv, _ in sampler),
                        "max_mode_error_sampler": max(error for _, error in sampler),
                        "acting_n_candidates": n_candidates,
                        "tv_acting": float(np.mean([tv for tv, _ in acting])),
                        "worst_tv_acting": max(tv for tv, _ in acting),
                        "max_mode_error_acting": max(error for _, error in acting),
                        "seconds": time.perf_counter() - start,
                    }
                    rows.append(row)
                    print(
                        f"{name:>14} {alpha:>5} {seed:>4} {row['tv_sampler']:10.3f} {row['worst_tv_sampler']:6.3f} "
                        f"{n_candidates:>4} {row['tv_acting']:9.3f} {row['worst_tv_acting']:6.3f} "
                        f"{row['max_mode_error_acting']:8.3f} {row['seconds']:5.0f}",
                        flush=True,
                    )
            for n_candidates in sorted({row["acting_n_candidates"] for row in rows}):
                done = [r for r in rows if (r["target"], r["alpha"], r["acting_n_candidates"]) == (name, alpha, n_candidates)]
                print(
                    f"{name:>14} {alpha:>5} median mean TV: sampler {statistics.median(r['tv_sampler'] for r in done):.3f}, "
                    f"acting (M = {n_candidates}) {statistics.median(r['tv_acting'] for r in done):.3f}"
                )
    return rows


def append_csv(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path`` (a new time-stamped file if its columns differ)."""
    if not rows:
        return
    if path.exists():
        with open(path, newline="") as file:
            if next(csv.reader(file), None) != list(rows[0]):  # written before a column was added
                path = path.with_name(f"{path.stem}_{int(time.time())}.csv")
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        if file.tell() == 0:
            writer.writeheader()
        writer.writerows(rows)
    print(f"appended to {path}")


def run_columns(name: str, alpha: float, seed: int, args: argparse.Namespace, steps: int) -> dict:
    """The CSV columns that say which run a row is from."""
    return {
        "target": name,
        "alpha": alpha,
        "seed": seed,
        "protocol": args.protocol,
        "steps": steps,
        "sql_kwargs": json.dumps(args.sql_kwargs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--contextual", nargs="*", default=list(CONTEXTUAL_TARGETS), choices=list(CONTEXTUAL_TARGETS))
    parser.add_argument("--protocol", choices=("fixed", "bandit"), default="fixed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alphas", type=float, nargs="+", help="temperatures (default: each target's)")
    parser.add_argument("--steps", type=int, help="sampler steps (fixed, default 3000) or env steps (bandit, default 12000)")
    parser.add_argument(
        "--deterministic-particles",
        type=int,
        nargs="*",
        default=[],
        help="also give q at the deterministic action for each of these deterministic_n_particles (CSV column)",
    )
    parser.add_argument(
        "--acting-candidates",
        type=int,
        nargs="+",
        help="score the policy's actions with each of these acting_n_candidates (default: the model's setting)",
    )
    parser.add_argument("--context-draws", type=int, default=N_DRAWS, help="draws per state on the contextual targets")
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
    if args.targets:
        print("Q det: q at predict(deterministic=True); Q xi=0: at the sampler's zero-noise action; Q best: the best mode's")
        header = ("target", 14), ("alpha", 5), ("seed", 4), ("TV", 6), ("M", 4), ("TV act", 6), ("mode err", 8)
        header += (("err act", 8), ("empty", 6))
        header += ("H sampler", 9), ("H exact", 8), ("Q det", 7), ("Q xi=0", 7), ("Q best", 7), ("s", 5)
        print(" ".join(f"{name:>{width}}" for name, width in header))
    for name in args.targets:
        target = TARGETS[name]
        for alpha in args.alphas or target.alphas:
            exact = exact_reference(target, alpha)
            q_best = best_q(target)
            for seed in args.seeds:
                start = time.perf_counter()
                model = make_model(target, alpha, seed, args.sql_kwargs)
                if args.protocol == "fixed":
                    train_fixed(model, target, steps)
                else:
                    model.learn(steps)
                actions = draw(model)
                sampler = evaluate(target, alpha, actions, exact)
                q_by_particles = json.dumps(deterministic_q_by_particles(model, target.q, args.deterministic_particles))
                for n_candidates in acting_settings(model, args.acting_candidates):
                    model.policy.acting_n_candidates = n_candidates
                    acting = evaluate(target, alpha, draw_acting(model), exact)
                    result = {**sampler, "acting_n_candidates": n_candidates, "tv_acting": acting["tv"]}
                    result.update(max_mode_error_acting=acting["max_mode_error"], modes_acting=json.dumps(acting["modes"]))
                    result.update(deterministic_q(model, target.q), q_best=q_best, q_by_particles=q_by_particles)
                    seconds = time.perf_counter() - start
                    print(
                        f"{name:>14} {alpha:>5} {seed:>4} {result['tv']:6.3f} {n_candidates:>4} {result['tv_acting']:6.3f} "
                        f"{result['max_mode_error']:8.3f} {result['max_mode_error_acting']:8.3f} "
                        f"{result['empty_region_mass']:6.3f} {result['entropy_kl']:9.3f} {result['entropy_exact']:8.3f} "
                        f"{result['q_deterministic']:7.3f} {result['q_zero_noise']:7.3f} {q_best:7.3f} {seconds:5.0f}",
                        flush=True,
                    )
                    rows.append(
                        {
                            **run_columns(name, alpha, seed, args, steps),
                            **{k: v for k, v in result.items() if k != "modes"},
                            "modes": json.dumps(result["modes"]),
                            "exact_modes": json.dumps(exact["modes"]),
                        }
                    )
                if seed == args.seeds[0] and not args.no_pictures:
                    title = f"{name}, alpha {alpha}, {args.protocol}: TV {sampler['tv']:.3f}"
                    picture(target, alpha, actions, exact, args.out / f"{name}_alpha{alpha}_{args.protocol}.png", title)
            exact_modes = ", ".join(f"{mode} {mass:.3f}" for mode, mass in exact["modes"].items())
            for n_candidates in sorted({row["acting_n_candidates"] for row in rows}):
                done = [r for r in rows if (r["target"], r["alpha"], r["acting_n_candidates"]) == (name, alpha, n_candidates)]
                print(
                    f"{name:>14} {alpha:>5} median TV {statistics.median(row['tv'] for row in done):.3f} "
                    f"(acting, M = {n_candidates}: {statistics.median(row['tv_acting'] for row in done):.3f}), "
                    f"max mode error {max(row['max_mode_error'] for row in done):.3f} "
                    f"(acting {max(row['max_mode_error_acting'] for row in done):.3f}); exact masses {exact_modes}"
                )
    append_csv(args.out / f"fidelity_{args.protocol}.csv", rows)
    if args.contextual:
        append_csv(args.out / f"fidelity_contextual_{args.protocol}.csv", contextual_table(args, steps, args.context_draws))


if __name__ == "__main__":
    main()
