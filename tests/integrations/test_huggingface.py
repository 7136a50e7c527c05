"""The Hugging Face Trainer with descentlab's optimizers and schedulers: both documented paths, a resume
that continues bitwise, and the diagnostics callback. A tiny BERT built from a config: no download."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from descentlab import create_optimizer  # noqa: E402
from descentlab.integrations.huggingface import (  # noqa: E402
    DiagnosticsCallback,
    add_diagnostics,
    optimizer_cls_and_kwargs,
)
from descentlab.optim import RAdam  # noqa: E402
from descentlab.schedules import Cosine, ScheduledLR, Warmup  # noqa: E402

STEPS = 4


class Examples(torch.utils.data.Dataset):
    """16 random token sequences with labels: enough for a few batches."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.input_ids = torch.randint(0, 50, (16, 6), generator=generator)
        self.labels = torch.randint(0, 2, (16,), generator=generator)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def tiny_bert():
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=8,
        num_labels=2,
    )
    transformers.set_seed(0)
    return transformers.BertForSequenceClassification(config)


def arguments(output_dir, **options):
    defaults = dict(
        output_dir=str(output_dir),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    return transformers.TrainingArguments(**{**defaults, **options})


def ours(model):
    optimizer = create_optimizer("radam", model, lr=1e-3, weight_decay=0.01)
    return optimizer, ScheduledLR(optimizer, Warmup("linear", 2, then=Cosine(STEPS - 2)))


def train(output_dir, resume=None, **options):
    model = tiny_bert()
    trainer = transformers.Trainer(
        model=model, args=arguments(output_dir, **options), train_dataset=Examples(), optimizers=ours(model)
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_our_optimizer_and_scheduler_step_per_batch(tmp_path):
    trainer = train(tmp_path)
    assert isinstance(trainer.optimizer.optimizer, RAdam)  # inside accelerate's wrapper
    learning_rates = [
        entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry
    ]
    schedule = Warmup("linear", 2, then=Cosine(STEPS - 2))
    # the Trainer logs the rate after each step's scheduler.step(), so log k shows step k's value
    assert learning_rates == pytest.approx([1e-3 * schedule(step) for step in range(STEPS)], abs=1e-12)


def test_resume_from_checkpoint_continues_bitwise(tmp_path):
    straight = train(tmp_path / "straight")
    train(tmp_path / "first", save_strategy="steps", save_steps=2)
    resumed = train(tmp_path / "resumed", resume=str(tmp_path / "first" / "checkpoint-2"))
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name


def test_optimizer_cls_and_kwargs_builds_ours_with_the_trainers_groups(tmp_path):
    model = tiny_bert()
    trainer = transformers.Trainer(
        model=model,
        args=arguments(tmp_path, weight_decay=0.05, max_steps=2),
        train_dataset=Examples(),
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs("radam", lr=2e-3, betas=(0.9, 0.99)),
    )
    trainer.train()
    optimizer = trainer.optimizer.optimizer
    assert isinstance(optimizer, RAdam)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0]
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    assert optimizer.param_groups[0]["initial_lr"] == 2e-3
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names == set(trainer.get_decay_parameter_names(model)), "the Trainer's own rule"


def test_optimizer_cls_and_kwargs_refuses_closure_optimizers_and_bad_keywords():
    with pytest.raises(ValueError, match="Trainer never passes"):
        optimizer_cls_and_kwargs("LineSearchGD")
    with pytest.raises(ValueError, match="bad hyperparameters for RAdam"):
        optimizer_cls_and_kwargs("radam", momentum=0.9)


def test_diagnostics_reach_the_trainers_logs(tmp_path):
    model = tiny_bert()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = transformers.Trainer(
        model=model,
        args=arguments(tmp_path, max_steps=2, lr_scheduler_type="constant"),
        train_dataset=Examples(),
        optimizers=(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)),
    )
    callback = add_diagnostics(trainer)
    assert isinstance(callback, DiagnosticsCallback)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "descentlab/group0/update_norm" in entry]
    assert len(logged) == 2
    assert logged[-1]["descentlab/group0/effective_step_size"] == pytest.approx(0.1, rel=1e-4)
