import numpy as np
import pytest
from matplotlib.image import imread

from sb3_sql.plots import plot_cost_contours, plot_q_contours


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("MultiGoal-v0")


def test_q_contours_one_panel_per_state(model, tmp_path):
    figure = plot_q_contours(model, states=[(0.0, 0.0), (1.0, 2.0)], n_grid=10, n_samples=5, filename=tmp_path / "q.png")
    assert len(figure.axes) == 2
    assert [axes.get_title() for axes in figure.axes] == ["state (0.0, 0.0)", "state (1.0, 2.0)"]
    samples = figure.axes[0].lines[0].get_xydata()
    assert samples.shape == (5, 2) and np.all(np.abs(samples) <= 1)
    image = imread(tmp_path / "q.png")
    assert image.shape[0] > 100 and image.std() > 0


def test_q_contours_bad_input(model, tiny_model):
    with pytest.raises(ValueError, match="states must have shape"):
        plot_q_contours(model, states=[(0.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="n_grid"):
        plot_q_contours(model, n_grid=1)
    pendulum = tiny_model("Pendulum-v1")
    with pytest.raises(ValueError, match="2-D action"):
        plot_q_contours(pendulum, states=[(1.0, 0.0, 0.0)])


def test_cost_contours(tmp_path):
    paths = [np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.5]]), np.array([[0.0, 0.0], [0.0, -1.0]])]
    figure = plot_cost_contours(paths, filename=tmp_path / "cost.png")
    drawn = [line.get_xydata() for line in figure.axes[0].lines[:2]]
    for line, path in zip(drawn, paths, strict=True):
        np.testing.assert_array_equal(line, path)
    assert imread(tmp_path / "cost.png").std() > 0
    with pytest.raises(ValueError, match=r"\[steps, 2\]"):
        plot_cost_contours([np.zeros(3)])
