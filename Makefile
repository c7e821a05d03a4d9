# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all install testbin crds lint test run bench clean

all: install testbin

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The venv's old pip installs the chDB wheel many times slower.
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

# kube-apiserver and etcd for tests and the sandbox, cached outside the repo.
testbin:
	bash hack/testbin/build.sh

crds: install
	$(BIN)/python -m trail_operator.crds.generate --out crds

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: install testbin lint
	$(BIN)/python -m trail_operator.crds.generate --check --out crds
	$(BIN)/pytest -q

run: install testbin
	$(BIN)/trailctl up

clean:
	rm -rf .trail .pytest_cache .mypy_cache .ruff_cache
