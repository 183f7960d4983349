"""Hypothesis strategies shared by the property-based tests: random particle sets of any shape and scale."""

import torch as th
from hypothesis import settings
from hypothesis import strategies as st

#: Few examples and no deadline: the suite stays fast on a shared 2-core machine.
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def particle_sets(draw, n_sets=2, min_particles=2):
    """``n_sets`` float64 tensors ``[batch, K_i, D]`` (K_i from ``min_particles`` to 8) with entries of scale 1e-3 to 1e3."""
    batch, dim = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    scale = 10.0 ** draw(st.floats(-3, 3))
    generator = th.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    sizes = [draw(st.integers(min_particles, 8)) for _ in range(n_sets)]
    return [scale * th.randn(batch, size, dim, dtype=th.float64, generator=generator) for size in sizes]
