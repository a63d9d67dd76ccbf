# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test tools lint bench clean

$(BIN)/.linechat-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[chat-redis]'
	touch $@

$(BIN)/.linechat-test-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test]'
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps 'arq>=0.26'  # see pyproject.toml
	touch $@ $(BIN)/.linechat-installed

## run: serve the bundled services on loopback, storage in ./data
run: $(BIN)/.linechat-installed
	$(BIN)/linechat serve --data-dir data --set services.smtp.tls_port=8465 --set services.redis.tls_port=6390 \
		--set services.chat.irc_tls_port=6697

## test: the whole suite (installs swaks and redis tools where it can)
test: $(BIN)/.linechat-test-installed tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

tools:
	@bash .ci/install-tools

$(BIN)/.linechat-dev-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test,dev]'
	touch $@ $(BIN)/.linechat-test-installed $(BIN)/.linechat-installed

## lint: ruff, and mypy on the package as installed (installs the dev extra)
lint: $(BIN)/.linechat-dev-installed
	$(BIN)/python -m ruff check framework services plugins tests bench examples
	bash .ci/typecheck $(BIN)/python

## bench: every benchmark in bench/ (minutes; see docs/performance.md)
bench: $(BIN)/.linechat-test-installed
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test,bench]'
	bash bench/run-all

clean:
	rm -rf .venv .venv-* build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
