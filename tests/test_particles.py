"""mlp_on_particles: the state's part of the first layer computed once equals the concatenated input."""

import pytest
import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn

from sb3_sql import SQL
from sb3_sql.policies import mlp_on_particles


def concatenated(net: nn.Module, features: th.Tensor, particles: th.Tensor) -> th.Tensor:
    """The plain evaluation: ``net(cat([features, x]))`` with the features repeated for every particle."""
    if particles.dim() == 2:
        particles = particles.unsqueeze(0).expand(features.shape[0], -1, -1)
    expanded = features.unsqueeze(1).expand(-1, particles.shape[1], -1)
    return net(th.cat([expanded, particles], dim=-1))


@pytest.mark.parametrize("net_arch", [[16, 8], []])
@pytest.mark.parametrize("shared_particles", [False, True])
def test_values_and_gradients_equal_the_concatenated_input(net_arch, shared_particles):
    th.manual_seed(0)
    net = nn.Sequential(*create_mlp(5 + 3, 2, net_arch, nn.Tanh)).double()
    features = th.randn(4, 5, dtype=th.float64, requires_grad=True)
    shape = (6, 3) if shared_particles else (4, 6, 3)
    particles = th.randn(*shape, dtype=th.float64, requires_grad=True)

    outputs = []
    for evaluate in (mlp_on_particles, concatenated):
        output = evaluate(net, features, particles)
        th.manual_seed(1)  # the same generic loss for both, so every output element's gradient counts
        gradients = th.autograd.grad((output * th.randn_like(output)).sum(), [features, particles, *net.parameters()])
        outputs.append((output, gradients))
    (fast, fast_grads), (plain, plain_grads) = outputs
    assert fast.shape == plain.shape == (4, 6, 2)
    th.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    for fast_grad, plain_grad in zip(fast_grads, plain_grads, strict=True):
        th.testing.assert_close(fast_grad, plain_grad, rtol=1e-12, atol=1e-12)


def test_a_first_module_that_is_not_linear_gets_the_concatenation():
    th.manual_seed(0)
    net = nn.Sequential(nn.Tanh(), nn.Linear(5 + 3, 2)).double()
    features, particles = th.randn(4, 5, dtype=th.float64), th.randn(4, 6, 3, dtype=th.float64)
    th.testing.assert_close(mlp_on_particles(net, features, particles), concatenated(net, features, particles))


def test_sql_networks_on_particles_equal_the_concatenated_input():
    """The sampler's particles and the critics' values per particle, as SQL's update computes them."""
    model = SQL("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", policy_kwargs=dict(n_critics=2))
    policy = model.policy
    obs = th.randn(7, 3)
    th.manual_seed(3)
    particles = policy.actor.pre_tanh_particles(obs, 5)  # [7, 5, 1]
    th.manual_seed(3)
    noise = th.randn(7, 5, 1)
    features = policy.actor.extract_features(obs, policy.actor.features_extractor)
    skip = noise if policy.actor.noise_skip else 0.0
    th.testing.assert_close(particles, concatenated(policy.actor.pre_tanh_net, features, noise) + skip)

    actions = th.tanh(particles)
    critic_features = policy.critic.extract_features(obs, policy.critic.features_extractor)
    expected = (
        th.stack([concatenated(q_net, critic_features, actions).squeeze(-1) for q_net in policy.critic.q_networks])
        .min(dim=0)
        .values
    )
    th.testing.assert_close(policy.particle_q_values(policy.critic, obs, actions), expected)


@pytest.mark.parametrize("first_linear", [True, False])
def test_detached_particles_keep_their_values_and_only_the_others_carry_gradient(first_linear):
    th.manual_seed(0)
    layers = create_mlp(5 + 3, 2, [16, 8], nn.Tanh)
    net = nn.Sequential(*(layers if first_linear else [nn.Identity(), *layers])).double()
    features = th.randn(4, 5, dtype=th.float64, requires_grad=True)
    particles = th.randn(4, 6, 3, dtype=th.float64)
    split = mlp_on_particles(net, features, particles, n_detached=4)
    plain = concatenated(net, features, particles)
    th.testing.assert_close(split, plain, rtol=1e-12, atol=1e-12)
    weights = th.randn_like(plain)
    inputs = [features, *net.parameters()]
    split_grads = th.autograd.grad((split * weights).sum(), inputs)
    updated_grads = th.autograd.grad((plain[:, 4:] * weights[:, 4:]).sum(), inputs)
    for split_grad, updated_grad in zip(split_grads, updated_grads, strict=True):
        th.testing.assert_close(split_grad, updated_grad, rtol=1e-12, atol=1e-12)
