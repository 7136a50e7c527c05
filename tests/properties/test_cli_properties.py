"""The command line and config files, with bad settings: exit code 2, one line naming the key, no traceback.

``descentlab.cli.main`` is driven in-process with ``compare``/``run`` argv (on the tiny test problems, one
seed, two steps, so a value that slipped through would train quickly and fail the exit-code check). The
keys come from the lab's registries: every lab setting of :data:`descentlab.lab.fields.FIELDS`, every
constructor keyword of an optimizer (plain or qualified, ``SGD.momentum``), and the long options. Each
value drawn is bad for its key by a rule that does not consult the parser under test: text that is no
number for a number, nan/inf, a number below every allowed range, a truthy word for a flag, an unknown
name for a choice.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from descentlab.cli import main
from descentlab.lab.fields import FIELDS
from descentlab.optim.registry import optimizer_classes
from lab.tiny_problems import register_tiny_problems, unregister_tiny_problems

# Each example runs the real command (a spec check builds the problem and takes a step): fewer of them
# keep this file near 20 s on one core.
CLI_EXAMPLES = settings(max_examples=15)
BASE = ["--problems", "tiny-bowl", "--seeds", "0", "--jobs", "1", "--no-sweep", "--steps", "2"]
NOT_NUMBERS = ("abc", "1.2.3", "0x", "[1]", "one")
NON_FINITE = ("nan", "inf", "-inf", "1e400")

# What kind of value each lab setting takes, as its help text in `descentlab compare --help` says; a new
# setting without a kind here fails test_every_setting_has_a_kind.
KINDS = {
    "steps": "count",
    "epochs": "count",
    "batch_size": "count",
    "unfreeze_at": "count",
    "early_stopping": "count",
    "evaluations": "count",
    "clip_norm": "positive",
    "clip_value": "positive",
    "max_norm": "positive",
    "grad_tol": "positive",
    "l1": "non_negative",
    "l2": "non_negative",
    "proximal_l1": "non_negative",
    "warmup": "non_negative",
    "nonfinite": "choice",
    "decay_groups": "choice",
    "schedule": "choice",
    "momentum_schedule": "choice",
    "record": "choice",
    "histogram_steps": "count_list",
    "variant": "choice",
    "freeze": "pattern",
}
BAD_BY_KIND = {
    "count": st.sampled_from((*NOT_NUMBERS, *NON_FINITE, "-1", "1.5", "true", "2**70")),
    "count_list": st.sampled_from(("abc", "-1", "1.5", "0,x", "nan")),
    "positive": st.sampled_from((*NOT_NUMBERS, *NON_FINITE, "0", "-1", "-1e-9", "true")),
    "non_negative": st.sampled_from((*NOT_NUMBERS, *NON_FINITE, "-1", "-1e-9", "true")),
    "choice": st.text(alphabet="xyzq_", min_size=1, max_size=6),
    "pattern": st.sampled_from(("nope", "zz.*")),
}


@pytest.fixture(scope="module", autouse=True)
def tiny_problems():
    register_tiny_problems()
    yield
    unregister_tiny_problems()


OUT = tempfile.TemporaryDirectory(prefix="descentlab-cli-properties-")  # removed at exit


def _run(argv: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``descentlab ARGV --out <temporary folder>``, run in this process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*argv, "--out", str(Path(OUT.name) / "runs")])
    return code, err.getvalue()


def _assert_refused(code: int, err: str, key: str) -> None:
    lines = err.strip().splitlines()
    assert code != 0, f"exit code {code} for a bad {key}"
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("descentlab: error:"), err
    assert key.lower() in lines[0].lower(), f"the message does not name {key!r}: {lines[0]}"


def _hyperparameter_keys() -> list[tuple[str, str, inspect.Parameter]]:
    """(optimizer, keyword, parameter) for every numeric or flag keyword of every optimizer."""
    rows = []
    for cls in optimizer_classes().values():
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name in ("self", "params") or isinstance(parameter.default, str) or parameter.default is None:
                continue
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # a wrapper's base hyperparameters
                continue
            rows.append((cls.__name__, name, parameter))
    return rows


HYPERPARAMETERS = _hyperparameter_keys()


def _bad_hyperparameter(parameter: inspect.Parameter) -> st.SearchStrategy[str]:
    """Text that no optimizer accepts for this keyword (policy: every real is finite; flags are bools)."""
    default = parameter.default
    if isinstance(default, bool):
        return st.sampled_from(("yes", "2", "maybe", "nan"))
    if isinstance(default, tuple):
        return st.sampled_from(("nan,0.9", "0.9,inf", "abc,0.9"))
    if isinstance(default, int) and "int" in str(parameter.annotation):
        return st.sampled_from(("abc", "2.5", "nan", "-5"))
    return st.sampled_from((*NON_FINITE, "abc"))


@CLI_EXAMPLES
@given(data=st.data())
def test_bad_setting_values_are_one_line_errors(data):
    key = data.draw(st.sampled_from(sorted(FIELDS)), label="key")
    value = data.draw(BAD_BY_KIND[KINDS[key]], label="value")
    command = data.draw(st.sampled_from(("compare", "run")), label="command")
    argv = [command, *_command_base(command, key), "--set", f"{key}={value}"]
    _assert_refused(*_run(argv), key)


def _command_base(command: str, key: str) -> list[str]:
    if command == "run":
        return ["--problem", "tiny-bowl", "--optimizer", "SGD", "--seed", "0"]
    base = [*BASE, "--optimizers", "SGD"]
    if key == "steps":  # the --steps flag wins over --set steps=...
        del base[base.index("--steps") : base.index("--steps") + 2]
    return base


@CLI_EXAMPLES
@given(data=st.data())
def test_bad_hyperparameters_are_one_line_errors(data):
    optimizer, key, parameter = data.draw(st.sampled_from(HYPERPARAMETERS), label="hyperparameter")
    value = data.draw(_bad_hyperparameter(parameter), label="value")
    qualified = data.draw(st.booleans(), label="qualified")
    how = data.draw(st.sampled_from(("--set", "--vary")), label="how")
    setting = f"{optimizer}.{key}" if qualified else key
    if how == "--vary":
        argv = ["compare", *BASE, "--optimizers", optimizer, "--vary", f"{setting}={value};{value}"]
    else:
        argv = ["compare", *BASE, "--optimizers", optimizer, "--set", f"{setting}={value}"]
    if optimizer in ("SVRG",):  # tiny-bowl has no finite data set; tiny-logreg has
        argv[argv.index("tiny-bowl")] = "tiny-logreg"
    _assert_refused(*_run(argv), key)


OPTIONS = {
    "--seeds": st.sampled_from(("-1", "abc", "1.5", "", ",", str(2**62), "nan", "0,x")),
    "--jobs": st.sampled_from(("0", "-1", "abc", "1.5", "nan")),
    "--steps": BAD_BY_KIND["count"],
    "--epochs": BAD_BY_KIND["count"],
    "--batch-size": st.sampled_from(("0", "-3", "abc", "fullish", "1.5")),
    "--lr": BAD_BY_KIND["positive"],
    "--schedule": BAD_BY_KIND["choice"],
    "--optimizers": st.sampled_from(("Nope", "SGD,Nope", ",")),
    "--problems": st.sampled_from(("no-such-problem", ",")),
}


@CLI_EXAMPLES
@given(data=st.data())
def test_bad_options_are_one_line_errors(data):
    option = data.draw(st.sampled_from(sorted(OPTIONS)), label="option")
    value = data.draw(OPTIONS[option], label="value")
    argv = ["compare", *BASE, "--optimizers", "SGD"]
    for replaced in {option, "--steps"} if option == "--epochs" else {option}:
        if replaced in argv:  # replace BASE's own value of this option
            del argv[argv.index(replaced) : argv.index(replaced) + 2]
    argv.append(f"{option}={value}")  # "=" so that a value such as "-1" is not read as an option
    name = option.removeprefix("--").replace("-", "_")
    names = {"optimizers": "optimizer", "problems": "problem"}
    _assert_refused(*_run(argv), names.get(name, name))


def _toml_value(value: str) -> str:
    """``value`` as TOML: a number or bool when it parses as one, else a string (nan and inf included)."""
    if value in ("nan", "inf", "-inf"):
        return value
    try:
        float(value)
        return value if "x" not in value else f'"{value}"'
    except ValueError:
        return f'"{value}"'


@CLI_EXAMPLES
@given(data=st.data())
def test_bad_config_files_are_one_line_errors(data):
    key = data.draw(st.sampled_from(sorted(FIELDS)), label="key")
    value = data.draw(BAD_BY_KIND[KINDS[key]], label="value")
    where = data.draw(st.sampled_from(("top", "set", "unknown")), label="where")
    if where == "unknown":
        key, text = f"no_such_{key}", f"no_such_{key} = 1\n"
    elif where == "set":
        text = f"[set]\n{key} = {_toml_value(value)}\n"
    else:
        text = f"{key} = {_toml_value(value)}\n"
    path = Path(OUT.name) / "config.toml"
    path.write_text(f'problems = "tiny-bowl"\noptimizers = ["SGD"]\nseeds = [0]\n{text}', encoding="utf-8")
    argv = ["compare", "--jobs", "1", "--no-sweep", "--config", str(path)]
    _assert_refused(*_run(argv), key)


def test_every_setting_has_a_kind():
    assert set(FIELDS) == set(KINDS), "declare the kind of each new lab setting in KINDS"


def test_a_good_command_passes_the_same_checks():
    """The harness itself: a valid command exits 0 (so the refusals above are the values' doing)."""
    code, err = _run(["run", *_command_base("run", ""), "--steps", "2", "--set", "lr=0.1"])
    assert code == 0, err
