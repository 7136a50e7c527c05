"""descentlab inside the frameworks people train with; each module imports its framework only when used.

- :mod:`descentlab.integrations.lightning` -- :class:`~descentlab.integrations.lightning.DiagnosticsCallback`.
- :mod:`descentlab.integrations.huggingface` -- ``optimizer_cls_and_kwargs`` for the ``Trainer`` and a
  diagnostics ``TrainerCallback``.
- :mod:`descentlab.integrations.timm` -- ``register()`` puts descentlab's optimizers in timm's registry.
- :mod:`descentlab.integrations.diagnostics` -- the framework-free measurements behind the callbacks.

Closure optimizers under trainers (``LineSearchGD``, ``Newton``, ``torch.optim.LBFGS``: ``step(closure)``
evaluates the loss several times):

- **Lightning: yes.** ``Trainer`` wraps ``training_step`` + ``backward`` in a closure and passes it to
  ``optimizer.step`` under automatic optimization; checkpoints carry the optimizer's ``state_dict``
  (``LineSearchGD`` keeps its step sizes there). Gradient accumulation and AMP's ``GradScaler`` are
  refused with closures by Lightning itself.
- **Hugging Face Trainer: no.** It calls ``optimizer.step()`` without a closure (``LineSearchGD`` then
  raises ``ValueError``). Use Lightning or your own loop; ``optimizer_cls_and_kwargs`` refuses them.
- **accelerate's usual loop: no** as written (``loss = ...; accelerator.backward(loss); optimizer.step()``);
  write the closure yourself: ``optimizer.step(closure)`` with ``closure`` calling
  ``accelerator.backward``, without gradient accumulation (each closure call must see fresh gradients).
- **torch.amp.GradScaler: no.** ``scaler.step(optimizer)`` does not support closures; train closure
  optimizers in float32 (or bfloat16 autocast, which needs no scaler).
"""
