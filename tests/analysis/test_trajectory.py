import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from descentlab.analysis import (
    parameter_vector,
    plot_trajectory,
    project_trajectory,
    save_figure,
    trajectory_loss_surface,
)
from state_checks import state_equal


def test_a_straight_line_has_all_its_variance_in_the_first_component():
    generator = torch.Generator().manual_seed(0)
    origin = torch.randn(30, generator=generator, dtype=torch.float64)
    direction = torch.randn(30, generator=generator, dtype=torch.float64)
    times = torch.tensor([0.0, 0.1, 0.15, 0.4, 0.45, 0.7, 0.9, 1.0], dtype=torch.float64)  # uneven steps
    projection = project_trajectory([origin + t * direction for t in times])
    assert projection.explained_variance_ratio[0].item() == pytest.approx(1.0, abs=1e-12)
    assert projection.explained_variance_ratio[1].item() == pytest.approx(0.0, abs=1e-12)
    expected = (1.0 - times) * direction.norm()  # distance to the final point, start on the positive side
    np.testing.assert_allclose(projection.coordinates[:, 0].numpy(), expected.numpy(), atol=1e-12)
    np.testing.assert_allclose(projection.coordinates[:, 1].numpy(), 0.0, atol=1e-12)
    assert projection.coordinates[-1].abs().max().item() == 0.0


def test_projection_agrees_with_scikit_learn_pca():
    rng = np.random.default_rng(1)
    steps = np.cumsum(rng.standard_normal((25, 12)) * np.linspace(3, 0.1, 12), axis=0)
    projection = project_trajectory(torch.as_tensor(steps))
    pca = PCA(n_components=2).fit(steps - steps[-1])
    np.testing.assert_allclose(
        projection.explained_variance_ratio.numpy(), pca.explained_variance_ratio_, rtol=1e-10
    )
    cosines = np.abs((projection.directions.numpy() * pca.components_).sum(axis=1))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-10)
    np.testing.assert_allclose(
        np.abs(projection.coordinates.numpy()), np.abs((steps - steps[-1]) @ pca.components_.T), atol=1e-10
    )


def test_trajectory_of_gradient_descent_is_plotted_over_its_loss_plane(linear_regression, tmp_path):
    model = linear_regression.model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    points = [parameter_vector(model)]
    for _ in range(30):
        optimizer.zero_grad()
        linear_regression.loss().backward()
        optimizer.step()
        points.append(parameter_vector(model))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    projection = project_trajectory(points)
    surface = trajectory_loss_surface(
        model, linear_regression.loss, projection, resolution=6, progress=False, report=None
    )
    assert state_equal(dict(model.state_dict()), before)
    assert (
        surface.xs.min() < projection.coordinates[:, 0].min()
        and surface.xs.max() > projection.coordinates[:, 0].max()
    )
    assert save_figure(plot_trajectory(projection, surface), tmp_path / "path.png").stat().st_size > 1000


def test_identical_points_are_rejected():
    with pytest.raises(ValueError, match="identical"):
        project_trajectory([torch.ones(3)] * 4)
    with pytest.raises(ValueError, match="at least 2 points"):
        project_trajectory([torch.ones(3)])
