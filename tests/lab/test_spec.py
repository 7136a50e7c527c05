import hashlib
import json

import pytest

from descentlab.lab.spec import RunSpec


def test_run_id_is_sha256_of_canonical_json_written_independently():
    spec = RunSpec.create("tiny-bowl", "Adam", {"lr": 0.1, "betas": [0.9, 0.99]}, seed=3, steps=10)
    expected_json = (
        '{"batch_size":null,"epochs":null,"hyperparameters":{"betas":[0.9,0.99],"lr":0.1},"optimizer":"adam",'
        '"problem":"tiny-bowl","schedule":null,"seed":3,"steps":10,"variant":null}'
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
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"steps": 5, "epochs": 2}, "give steps or epochs, not both"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"schedule": {"min_lr": 0.1}}, "a schedule needs a 'name'"),
        ({"hyperparameters": {"lr": float("nan")}}, "hyperparameter lr must be finite"),
    ],
)
def test_bad_values_are_named(changes, message):
    arguments = {"hyperparameters": None, **changes}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunSpec.create("tiny-bowl", "sgd", arguments.pop("hyperparameters"), **arguments)
