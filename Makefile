# Build, test and run the project. Every target that needs a broker starts
# it first through scripts/brokers.sh, which does nothing if it is running.

GO        ?= go
PYTHON    ?= python3
GOTAGS    := dynamic
LIB       := python/cello/_cello.so
GO_SRC    := $(shell find core bridge -name '*.go' -o -name '*.h') go.mod go.sum
PYTEST    ?= $(PYTHON) -m pytest

.PHONY: build test test-go test-py test-faults brokers brokers-down demo wheel clean

build: $(LIB)

$(LIB): $(GO_SRC)
	$(GO) build -tags $(GOTAGS) -buildmode=c-shared -o $(LIB) ./bridge
	rm -f python/cello/_cello.h

brokers:
	scripts/brokers.sh up

brokers-down:
	scripts/brokers.sh down

# Go's own suite (with the race detector, against the real brokers), then
# the Python suite against the same brokers.
test: build brokers test-go test-py

test-go:
	$(GO) test -race -count=1 -tags "$(GOTAGS) integration" ./core/...

test-py: build
	$(PYTEST) -q tests --ignore=tests/faults

# Fault tests: real worker processes killed and restarted, counted messages.
test-faults: build brokers
	$(PYTEST) -q -s tests/faults

demo: build brokers
	$(PYTHON) examples/demo.py

wheel:
	rm -rf build dist/*.whl
	$(PYTHON) -m pip wheel --no-deps -w dist/raw .
	$(PYTHON) -m auditwheel repair -w dist dist/raw/*.whl
	rm -rf dist/raw

clean:
	rm -rf $(LIB) build dist python/*.egg-info

# Benchmark against the peers on the local brokers (about 12 minutes on 2
# cores): writes bench/results.json, the table in bench/README.md and
# bench/ratios.png. BENCH_QUICK=1 runs each client once, briefly, into
# bench/.quick/; BENCH_CASES=kafka-produce picks cases by name.
.PHONY: bench
bench: build brokers
	PYTHON=$(PYTHON) bench/venv.sh
	PYTHONPATH=python bench/.venv/bin/python bench/run.py
