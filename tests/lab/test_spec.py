import hashlib
import json
import re

import pytest

from descentlab.lab.spec import RunSpec


def test_run_id_is_sha256_of_canonical_json_written_independently():
    spec = RunSpec.create(
        "tiny-bowl", "Adam", {"lr": 0.1, "betas": [0.9, 0.99]}, seed=3, steps=10, data="ab12"
    )
    expected_json = (
        '{"batch_size":null,"data":"ab12","epochs":null,"hyperparameters":{"betas":[0.9,0.99],"lr":0.1},'
        '"model":{},"optimizer":"adam","problem":"tiny-bowl","record":{},"schedule":null,"seed":3,'
        '"steps":10,"techniques":{},"variant":null}'
    )
    assert spec.canonical_json() == expected_json
    assert spec.run_id == hashlib.sha256(expected_json.encode()).hexdigest()[:16]


def test_specs_are_frozen_hashable_and_order_independent():
    first = RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1, "momentum": 0.9})
    second = RunSpec.create("tiny-bowl", "SGD", {"momentum": 0.9, "lr": 0.1})
    assert first == second and hash(first) == hash(second) and first.run_id == second.run_id
    assert len({first, second, RunSpec.create("tiny-bowl", "sgd", {"lr": 0.2})}) == 2
    with pytest.raises(AttributeError):
        first.seed = 2


def test_round_trip_through_dict_and_json():
    spec = RunSpec.create(
        "tiny-logreg",
        "adamw",
        {"lr": 0.01, "betas": (0.9, 0.95)},
        variant="torch",
        schedule={"name": "cosine", "min_lr": 0.001},
        seed=2,
        epochs=3,
        batch_size=8,
    )
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.run_id == spec.run_id
    assert again.hyperparameter_dict == {"lr": 0.01, "betas": (0.9, 0.95)}
    assert again.schedule_dict == {"name": "cosine", "min_lr": 0.001}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": -1}, "seed must be a whole number in [0, 2**62), got -1"),
        ({"seed": 2**63}, "seed must be a whole number in [0, 2**62), got 9223372036854775808"),
        ({"seed": True}, "seed must be a whole number in [0, 2**62), got True"),
        ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
        ({"steps": True}, "steps must be a whole number >= 1, got True"),
        ({"steps": 5, "epochs": 2}, "give steps or epochs, not both"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1 or 'full', got 0"),
        ({"schedule": {"min_lr": 0.1}}, "a schedule needs a 'name'"),
        ({"hyperparameters": {"lr": float("nan")}}, "hyperparameter lr must be finite"),
    ],
)
def test_bad_values_are_named(changes, message):
    arguments = {"hyperparameters": None, **changes}
    with pytest.raises(ValueError, match=re.escape(message)):
        RunSpec.create("tiny-bowl", "sgd", arguments.pop("hyperparameters"), **arguments)


def test_configuration_is_everything_but_the_seed():
    base = RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, seed=0)
    assert base.with_seed(5).configuration_id == base.configuration_id
    assert base.with_seed(5).run_id != base.run_id
    changed = [
        RunSpec.create("tiny-bowl", "sgd", {"lr": 0.2}),
        RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, schedule={"name": "cosine"}),
        RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, techniques={"clip_norm": 1.0}),
        RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, batch_size=4),
        RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, steps=7),
        RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, data="other-data"),
    ]
    assert len({spec.configuration_id for spec in [base, *changed]}) == 1 + len(changed)


def test_run_id_includes_the_problems_data_fingerprint(monkeypatch):
    from dataclasses import replace

    from descentlab.problems import registry

    problem = registry.get_problem("tiny-bowl")
    before = RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1})
    assert before.data == problem.fingerprint()
    changed = replace(problem, data_fingerprint=lambda: "new data")
    monkeypatch.setitem(registry._PROBLEMS, "tiny-bowl", changed)
    after = RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1})
    assert after.data == changed.fingerprint() != before.data and after.run_id != before.run_id
