# Ludus make targets. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.10 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
LUDUS := $(VENV)/bin/ludus
# torch is installed first and pinned: on a CPU machine the CPU wheel (a local file here, or
# TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" elsewhere); on a GPU machine the
# default CUDA wheel. pip then sees torch satisfied and never pulls the multi-GB CUDA build by itself.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= dev,postgres,sample,mssql
PYTEST_ARGS ?=
DEMO_DB ?= sqlite:///demo.db

.PHONY: install demo test test-fast lint typecheck bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: install
	LUDUS_DATABASE_URL=$(DEMO_DB) $(LUDUS) db upgrade
	LUDUS_DATABASE_URL=$(DEMO_DB) $(LUDUS) data load-sample
	LUDUS_DATABASE_URL=$(DEMO_DB) $(LUDUS) optimize trials/jobs/cpo_spx_demo.json
	LUDUS_DATABASE_URL=$(DEMO_DB) $(LUDUS) recommend --strategy sma_cross --symbol SPX --interval 1d

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# No broker, no PostgreSQL, no Ray, nothing slow: the tier to run before every commit (markers: pyproject.toml;
# tests using a server's fixture are marked by tests/conftest.py).
FAST_MARKERS := not rabbitmq and not postgres and not ray and not slow
test-fast: install
	$(PY) -m pytest -q -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

# ruff is pinned in the dev extra; the rule selection is in pyproject.toml ([tool.ruff.lint]).
lint: install
	$(VENV)/bin/ruff check ludus tests bench
	$(VENV)/bin/ruff format --check ludus tests bench

# mypy is pinned in the dev extra; strict on contracts, stores, queue and cpo ([tool.mypy] in pyproject.toml).
typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/backtest_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache demo.db demo.prices.db .ludus

# --- images and Kubernetes (docker/, k8s/) -----------------------------------------------------------
# Images: docker buildx bake (docker/docker-bake.hcl). `image` builds this machine's platform and loads
# it into the local engine; `image-multiarch` builds linux/amd64 + linux/arm64 (Jetson) and pushes. On an
# amd64 machine arm64 builds run under QEMU: docker run --privileged --rm tonistiigi/binfmt --install arm64
# REGISTRY/IMAGE/TAG name the image for the build AND the manifests: `make k8s-image` writes them into
# k8s/components/image (the one image setting of both overlays); DIGEST=sha256:... pins the pushed manifest.
REGISTRY ?= registry.example.com/ludus
IMAGE ?= ludus
TAG ?= 0.1.0
DIGEST ?=
PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_TARGET ?= gpu
IMAGE_COMPONENT ?= k8s/components/image/kustomization.yaml
LOCAL_PLATFORM ?= linux/$(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
BAKE := REGISTRY=$(REGISTRY) IMAGE=$(IMAGE) TAG=$(TAG) PLATFORMS=$(PLATFORMS) REVISION=$(shell git rev-parse --short HEAD 2>/dev/null) docker buildx bake -f docker/docker-bake.hcl
OVERLAYS := kuberay keda
OVERLAY ?= kuberay

.PHONY: image image-multiarch image-print k8s-image k8s-render k8s-validate k8s-apply

image:
	$(BAKE) --load --set '*.platform=$(LOCAL_PLATFORM)' $(IMAGE_TARGET)

image-multiarch:
	$(BAKE) --push default

image-print:
	$(BAKE) --print

k8s-image:
	sed -i -e 's#^    newName:.*#    newName: $(REGISTRY)/$(IMAGE)#' \
	  -e 's#^    \(newTag\|digest\):.*#    $(if $(DIGEST),digest: $(DIGEST),newTag: "$(TAG)")#' $(IMAGE_COMPONENT)
	grep -A3 '^images:' $(IMAGE_COMPONENT)

k8s-render:
	mkdir -p out
	for o in $(OVERLAYS); do kubectl kustomize k8s/overlays/$$o > out/ludus-$$o.yaml || exit 1; done

k8s-validate: install
	$(PY) -m pytest tests/deploy -q

k8s-apply:
	kubectl apply -k k8s/overlays/$(OVERLAY)
