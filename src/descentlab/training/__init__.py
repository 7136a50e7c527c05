"""Training techniques that work with any ``torch.optim`` optimizer.

- clipping: :func:`clip_grad_norm`, :func:`clip_grad_value` with a non-finite policy.
- constraints: :class:`MaxNormConstraint`, :func:`attach_max_norm` (post-step hook).
- regularization: :func:`l1_penalty`, :func:`l2_penalty`, :class:`ProximalL1`, :func:`sparsity`.
- param_groups: :func:`weight_decay_param_groups` (no decay on biases and normalisation, layer-wise lr decay).
- optimizer_factory: :func:`create_optimizer` (an optimizer for a model in one call; also
  ``descentlab.create_optimizer``).
- freezing: :func:`freeze`, :func:`unfreeze`, :class:`GradualUnfreezer`, :func:`discriminative_param_groups`,
  :func:`replace_output_layer`, :func:`add_parameters_to_optimizer`.
- mc_dropout: :func:`mc_dropout_predict`.
- init: :func:`init_for_activation` (Glorot / He / LeCun by activation).
- checkpoint: :func:`save_checkpoint`, :func:`load_checkpoint` (bit-identical resume),
  :class:`CheckpointError`.
"""

from descentlab.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from descentlab.training.clipping import (
    GradientClipResult,
    NonFiniteGradientError,
    clip_grad_norm,
    clip_grad_value,
)
from descentlab.training.constraints import MaxNormConstraint, apply_max_norm, attach_max_norm, neuron_axis
from descentlab.training.freezing import (
    GradualUnfreezer,
    add_parameters_to_optimizer,
    discriminative_param_groups,
    freeze,
    match_parameters,
    replace_output_layer,
    unfreeze,
)
from descentlab.training.init import (
    InitScheme,
    compute_fans,
    init_for_activation,
    init_scheme_for,
    init_weight_,
)
from descentlab.training.mc_dropout import MCDropoutPrediction, mc_dropout_predict
from descentlab.training.optimizer_factory import create_optimizer
from descentlab.training.param_groups import (
    NORMALIZATION_LAYERS,
    decay_parameter_names,
    layer_indices,
    weight_decay_param_groups,
)
from descentlab.training.regularization import ProximalL1, SparsityReport, l1_penalty, l2_penalty, sparsity

__all__ = [
    "NORMALIZATION_LAYERS",
    "CheckpointError",
    "GradientClipResult",
    "GradualUnfreezer",
    "InitScheme",
    "MCDropoutPrediction",
    "MaxNormConstraint",
    "NonFiniteGradientError",
    "ProximalL1",
    "SparsityReport",
    "add_parameters_to_optimizer",
    "apply_max_norm",
    "attach_max_norm",
    "clip_grad_norm",
    "clip_grad_value",
    "compute_fans",
    "create_optimizer",
    "decay_parameter_names",
    "discriminative_param_groups",
    "freeze",
    "init_for_activation",
    "init_scheme_for",
    "init_weight_",
    "l1_penalty",
    "l2_penalty",
    "layer_indices",
    "load_checkpoint",
    "match_parameters",
    "mc_dropout_predict",
    "neuron_axis",
    "replace_output_layer",
    "save_checkpoint",
    "sparsity",
    "unfreeze",
    "weight_decay_param_groups",
]
