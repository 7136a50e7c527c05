import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deep_mlp_vanishing_gradients.py"


def test_example_runs_with_tiny_settings(capsys):
    spec = importlib.util.spec_from_file_location("deep_mlp_vanishing_gradients", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(depth=6, width=8, epochs=1, limit=200)
    assert set(results) == set(module.CONFIGURATIONS)
    for result in results.values():
        assert len(result["gradient_norms"]) == 7
        assert 0.0 <= result["accuracy"] <= 1.0
    # The saturating sigmoid with N(0, 1) weights has a smaller input-layer gradient than He-initialised ReLU.
    sigmoid = results["sigmoid, N(0,1) init"]["gradient_norms"]
    relu = results["ReLU, He init"]["gradient_norms"]
    assert sigmoid[0] / sigmoid[-1] < relu[0] / relu[-1]
    assert "gradient norm per layer" in capsys.readouterr().out
