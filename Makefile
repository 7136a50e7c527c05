# Two entry points (see README): `make demo` and `make test`. Each creates .venv when missing; `make test`
# also creates .venv-timm, the side environment of timm's test (requirements-timm.txt says why).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TIMM_BIN := .venv-timm/bin

.PHONY: demo test test-timm lint format bench clean

$(BIN)/descentlab: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(BIN)/descentlab

# Without this machine's pip settings (PIP_CONFIG_FILE=/dev/null loads no pip.conf, and PIP_FIND_LINKS is
# dropped): they offer the local CPU torch wheel, which pip would prefer to the pinned CUDA build.
$(TIMM_BIN)/timm-ready: requirements-timm.txt
	test -x $(TIMM_BIN)/python || $(PY) -m venv .venv-timm
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(TIMM_BIN)/python -m pip install -q --upgrade pip==26.3
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(TIMM_BIN)/python -m pip install -q -r requirements-timm.txt
	touch $(TIMM_BIN)/timm-ready

# timm's registration test and the README's timm snippet against the real timm; a skip is a failure here.
test-timm: $(TIMM_BIN)/timm-ready
	DESCENTLAB_REQUIRE_TIMM=1 $(TIMM_BIN)/python -m pytest -q tests/integrations/test_timm.py \
		tests/integrations/test_readme.py -k timm

demo: $(BIN)/descentlab
	$(BIN)/descentlab compare

test: $(BIN)/descentlab
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2
	$(MAKE) test-timm

bench: $(BIN)/descentlab
	$(BIN)/python benchmarks/step_speed.py

clean:
	rm -rf $(VENV) .venv-timm build dist src/*.egg-info
