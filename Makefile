# The two commands of the README: `make demo` and `make test`. Both install what they need.
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
APT_PKGS := iproute2 nftables dnsmasq-base dnsutils curl nginx-light libnginx-mod-stream \
            ethtool tcpdump dnsperf wrk iperf3 procps bird2 \
            chromium fonts-dejavu-core librsvg2-bin logrotate

.PHONY: deps venv test unit demo lint clean bench pythons fuzz

deps:            ## Debian packages: the lab's tools and witnesses (needs root)
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

test: deps venv  ## every test: unit, io (loopback) and lab (network namespaces, as root)
	$(BIN)/python -m pytest tests -q

pythons:         ## `pip install .` on Python 3.11, 3.12 and 3.13 (pyenv), unit tests against each install
	.ci/pythons

unit: venv
	$(BIN)/python -m pytest tests/unit -q

demo: deps venv  ## the article's lab: build it, run the demo, tear it down
	$(BIN)/sheer lab demo; status=$$?; $(BIN)/sheer lab down; exit $$status

# `make bench`, or one workload: `make bench WORKLOAD=dns-dsr` (also RUNS=, DURATION=)
bench: deps venv  ## sheer against Debian's nginx in the lab, interleaved runs, medians (as root)
	$(BIN)/python -m bench $(if $(WORKLOAD),--workload $(WORKLOAD)) $(if $(RUNS),--runs $(RUNS)) \
	  $(if $(DURATION),--duration $(DURATION))

# `make fuzz` (5,000 requests, 1,666 pipelines), or a count of your own: `make fuzz EXAMPLES=20000` (CI runs FUZZ_EXAMPLES=60 in `make test`)
fuzz: deps venv  ## the differential fuzzer, long: hostile requests, pipelines, upstream faults, sheer against nginx (as root)
	FUZZ_EXAMPLES=$(or $(EXAMPLES),5000) $(BIN)/python -m pytest tests/lab/test_http_differential.py -q

lint: venv      ## ruff (line length 110), mypy --strict (core, config, net, doctor, io), the layers' contracts
	$(BIN)/ruff check sheer tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	-$(BIN)/sheer lab down
	rm -rf $(VENV)
