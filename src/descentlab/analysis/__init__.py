"""See the loss surface: Hessians and their spectra, critical points, landscapes, the LR range test.

Works on any ``nn.Module``. The loss is a zero-argument closure ``loss_fn()`` that evaluates the scalar
loss of the model at its *current* parameters; the tools move the parameters and call it. For the
curvature and landscape tools it must use fixed data, for the LR range test a fresh minibatch per call::

    batch = next(task.batches)
    hessian = HessianOperator(task.model, lambda: task.loss(batch))      # fixed batch
    lr_range_test(task.model, optimizer, lambda: task.loss(next(task.batches)))  # new batch per step

Parameters are the trainable ones (``requires_grad=True``), flattened in ``model.parameters()`` order.
Every tool that moves parameters restores them (and the buffers) bit for bit.

Curvature: :class:`HessianOperator`, :func:`exact_hessian`, :func:`hessian_eigenvalues`,
:func:`top_eigenvalues`, :func:`hutchinson_trace`, :func:`spectral_density`, :func:`classify_model_point`.
2-D functions: :func:`classify_point_2d`, :func:`check_convexity_2d`, :func:`find_critical_points_2d`,
:func:`plot_critical_points`. Landscapes: :func:`interpolate_1d`, :func:`loss_surface_2d`,
:func:`filter_normalized_direction`, :func:`project_trajectory`. Learning rate: :func:`lr_range_test`.
"""

from descentlab.analysis.atomic_files import save_figure, write_json
from descentlab.analysis.classification import (
    PointClassification,
    classify_model_point,
    classify_point_2d,
    gradient_and_hessian_2d,
    label_from_evidence,
)
from descentlab.analysis.convexity import ConvexityReport, check_convexity_2d
from descentlab.analysis.critical_points import CriticalPoint, find_critical_points_2d, plot_critical_points
from descentlab.analysis.directions import filter_normalized_direction
from descentlab.analysis.hessian import (
    HessianOperator,
    HessianTooLargeError,
    exact_hessian,
    hessian_eigenvalues,
    hessian_vector_product,
)
from descentlab.analysis.lanczos import LanczosResult, lanczos
from descentlab.analysis.landscape import (
    EvaluationCost,
    Interpolation,
    LossSurface,
    interpolate_1d,
    loss_surface_2d,
    plot_interpolation,
    plot_loss_surface,
)
from descentlab.analysis.lr_range_test import LRRangeTestResult, lr_range_test, plot_lr_range_test
from descentlab.analysis.parameter_vector import (
    assign_parameter_vector,
    parameter_vector,
    restored_model_state,
    trainable_parameters,
)
from descentlab.analysis.spectrum import (
    Eigenpairs,
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    plot_spectral_density,
    spectral_density,
    top_eigenvalues,
)
from descentlab.analysis.trajectory import (
    TrajectoryProjection,
    plot_trajectory,
    project_trajectory,
    trajectory_loss_surface,
)

__all__ = [
    "ConvexityReport",
    "CriticalPoint",
    "Eigenpairs",
    "EvaluationCost",
    "HessianOperator",
    "HessianTooLargeError",
    "Interpolation",
    "LRRangeTestResult",
    "LanczosResult",
    "LossSurface",
    "PointClassification",
    "SpectralDensity",
    "TraceEstimate",
    "TrajectoryProjection",
    "assign_parameter_vector",
    "check_convexity_2d",
    "classify_model_point",
    "classify_point_2d",
    "exact_hessian",
    "filter_normalized_direction",
    "find_critical_points_2d",
    "gradient_and_hessian_2d",
    "hessian_eigenvalues",
    "hessian_vector_product",
    "hutchinson_trace",
    "interpolate_1d",
    "label_from_evidence",
    "lanczos",
    "loss_surface_2d",
    "lr_range_test",
    "parameter_vector",
    "plot_critical_points",
    "plot_interpolation",
    "plot_loss_surface",
    "plot_lr_range_test",
    "plot_spectral_density",
    "plot_trajectory",
    "project_trajectory",
    "restored_model_state",
    "save_figure",
    "spectral_density",
    "top_eigenvalues",
    "trainable_parameters",
    "trajectory_loss_surface",
    "write_json",
]
