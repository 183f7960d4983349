import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_sql import SQL, ComposedPolicy, compose

# Few particles: compose() runs the SVGD update, whose cost grows with their number.
PARTICLES = {"kernel_n_particles": 4, "value_n_particles": 4}


@pytest.fixture(scope="module")
def constituents(tiny_model):
    # Different critic architectures (and twin critics): the composed critic rebuilds each.
    up = gym.make("MultiGoal-v0", goal_weights=(1, 0, 1, 0))
    down = gym.make("MultiGoal-v0", goal_weights=(1, 0, 0, 1))
    return (
        tiny_model(up, seed=0, policy_kwargs={"net_arch": [16, 16]}, **PARTICLES).learn(100),
        tiny_model(down, seed=1, policy_kwargs={"net_arch": [8], "n_critics": 2}, **PARTICLES).learn(100),
    )


def state(module):
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_energies_add_up_and_critics_stay_frozen(constituents):
    first, second = constituents
    before = [state(model.policy) for model in constituents]
    composed = compose(constituents, weights=[0.25, 2.0], gradient_steps=20, seed=0)
    observations = th.as_tensor(np.stack([first.observation_space.sample() for _ in range(6)]), device=first.device)
    actions = 2 * th.rand(6, 5, 2, device=first.device) - 1
    with th.no_grad():
        energy = composed.policy.particle_q_values(composed.critic, observations, actions)
        expected = 0.25 * first.policy.particle_q_values(first.critic, observations, actions)
        expected += 2.0 * second.policy.particle_q_values(second.critic, observations, actions)
        flat_q = composed.critic(observations.repeat_interleave(5, 0), actions.reshape(30, 2))
    th.testing.assert_close(energy, expected)
    assert len(flat_q) == 1
    th.testing.assert_close(flat_q[0].reshape(6, 5), expected)
    # Composition trains the new sampler only: the composed critics are the constituents' ones, which are untouched.
    for model, saved in zip(constituents, before, strict=True):
        for key, value in state(model.policy).items():
            assert th.equal(value, saved[key]), key
    for index, model in enumerate(constituents):
        for name, source in (("critic", model.critic), ("critic_target", model.critic_target)):
            copied = getattr(composed, name).critics[index].state_dict()
            for key, value in source.state_dict().items():
                assert th.equal(copied[key], value), (name, index, key)


def test_sampler_moves_and_the_result_saves_loads_and_predicts(constituents, tmp_path):
    first = constituents[0]
    untrained = compose(constituents, gradient_steps=1, learning_rate=0.0, seed=3)
    composed = compose(constituents, gradient_steps=30, seed=3, progress_bar=True)
    assert isinstance(composed.policy, ComposedPolicy) and composed.get_env() is None
    assert composed.ent_coef == first.ent_coef and composed.kernel_n_particles == first.kernel_n_particles
    assert composed._n_updates == 30
    # Same seed, same initial sampler: only the 30 SVGD steps differ.
    moved = [not th.equal(a, b) for a, b in zip(untrained.actor.parameters(), composed.actor.parameters(), strict=True)]
    assert all(moved)

    observations = np.stack([first.observation_space.sample() for _ in range(8)])
    composed.save(tmp_path / "composed")
    loaded = SQL.load(tmp_path / "composed")
    assert isinstance(loaded.policy, ComposedPolicy) and loaded.policy.weights == [0.5, 0.5]
    for key, value in composed.policy.state_dict().items():
        assert th.equal(value, loaded.policy.state_dict()[key]), key
    actions, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(actions, composed.predict(observations, deterministic=True)[0])
    assert actions.shape == (8, 2) and np.all(np.abs(actions) <= 1)
    # Like any SQL model, it can go on learning on an environment of the same spaces.
    loaded.set_env(gym.make("MultiGoal-v0"))
    loaded.learn(60)
    assert loaded.num_timesteps == 60


def test_compose_on_given_observations(constituents, tmp_path):
    for index, model in enumerate(constituents):
        model.save(tmp_path / f"model{index}")
    loaded = [SQL.load(tmp_path / f"model{index}") for index in range(2)]  # without their replay buffers
    with pytest.raises(ValueError, match="model 0 has no replay buffer data"):
        compose(loaded, gradient_steps=1)
    observations = np.stack([loaded[0].observation_space.sample() for _ in range(10)])
    composed = compose(loaded, observations=observations, gradient_steps=5, seed=0)
    assert composed._n_updates == 5
    with pytest.raises(ValueError, match=r"observations must have shape \[N, \*\(2,\)\]"):
        compose(loaded, observations=np.zeros((10, 3)), gradient_steps=1)


def test_mismatched_models_are_refused(constituents, tiny_model):
    pendulum = tiny_model("Pendulum-v1", **PARTICLES)
    with pytest.raises(ValueError, match=r"compose\(\) needs models of the same spaces: .* model 1 has"):
        compose([constituents[0], pendulum])
    with pytest.raises(ValueError, match="at least one SQL model"):
        compose([])
    with pytest.raises(ValueError, match="weights must be 2 non-negative finite numbers"):
        compose(constituents, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="weights must be 2"):
        compose(constituents, weights=[1.0])
    with pytest.raises(ValueError, match="gradient_steps must be at least 1"):
        compose(constituents, gradient_steps=0)
    composed = compose(constituents, gradient_steps=1)
    with pytest.raises(ValueError, match="not composed models"):
        compose([composed, constituents[0]])
