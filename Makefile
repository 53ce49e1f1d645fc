# The two entry points of the README, plus the pieces they are made of.
.PHONY: setup search test lint bench bench-blocks bench-loader torchvision profile fixtures check-onnx

CARGO ?= cargo

# Installs the Debian packages the build needs where missing (Gloo's headers, for the c10d bridge), and creates (once
# per user) the torch 2.11.0 virtual environment that provides libtorch, linked as .libtorch.
setup:
	@./scripts/setup-system.sh
	@./scripts/setup-libtorch.sh >/dev/null

# A real AGNAS search in the NAS-Bench-201 space on the CIFAR-10 subset embedded in agnas (about 10 min, 2 cores).
search: setup
	$(CARGO) run --release -p agnas-cli -- search --space nb201

# Tests that need data agnas does not ship are #[ignore]d with their reason and run here when the data is named:
# AGNAS_CIFAR10_DIR (the provided CIFAR-10 images, unpacked) and AGNAS_NB201_CSV (the NAS-Bench-201 source CSV).
# The MPI engine's tests run with agnas built with `--features agnas/mpi` (target/mpi) where Open MPI can be installed.
test: setup
	$(CARGO) test --release --workspace
	@if [ -n "$$AGNAS_CIFAR10_DIR" ]; then $(CARGO) test --release --workspace -- --ignored cifar10; \
	else echo "not run: the tests on the provided CIFAR-10 images (set AGNAS_CIFAR10_DIR)"; fi
	@if [ -n "$$AGNAS_NB201_CSV" ]; then $(CARGO) test --release --workspace -- --ignored nb201_table; \
	else echo "not run: the test against the NAS-Bench-201 source CSV (set AGNAS_NB201_CSV)"; fi
	@if ip netns add agnas-probe 2>/dev/null && ip netns del agnas-probe; then \
		$(CARGO) test --release -p agnas --test dist -- --ignored two_hosts; \
	else echo "not run: the two-host test (it needs root and iproute2 for network namespaces)"; fi
	@if ./scripts/setup-system.sh mpi; then \
		$(CARGO) build --release -p agnas-cli --features agnas/mpi --target-dir target/mpi && \
		AGNAS_MPI_BIN="$(CURDIR)/target/mpi/release/agnas" $(CARGO) test --release -p agnas-cli --test dist -- --ignored mpi; \
	else echo "not run: the MPI tests (they need Open MPI and libclang: scripts/setup-system.sh mpi)"; fi

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Train-step time of a supernet (SPACE=nb201, darts or proxyless), agnas in fp32 and bf16, against the PyTorch
# references in fp32 and under autocast bf16, same machine, same run. proxyless runs at width 0.5, 64 px, batch 32
# unless BENCH_ARGS says otherwise, e.g.
# BENCH_ARGS="--width-mult 1.0 --image-size 224 --batch-size 8"; BENCH_ARGS="--also-python PY" adds another torch.
SPACE ?= nb201
BENCH_ARGS ?=
bench: setup
	$(CARGO) build --release -p agnas-cli
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/bench_compare.py --space $(SPACE) --binary target/release/agnas \
		$(BENCH_ARGS)

# Forward and backward time of each building block of a supernet against PyTorch, same machine, same run.
bench-blocks: setup
	$(CARGO) build --release -p agnas-cli
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/bench_compare.py --blocks --space $(SPACE) --binary target/release/agnas

# Where a supernet train step's CPU time goes, by op kind (needs perf); sampling starts after start-up and warm-up.
# proxyless: width 0.5, 64 px, batch 32; PROFILE_ARGS adds flags (e.g. --memory-format contiguous, --forward-only).
PROFILE_DELAY_MS = $(if $(filter darts,$(SPACE)),16000,$(if $(filter proxyless,$(SPACE)),3000,6000))
PROFILE_SHAPE = $(if $(filter proxyless,$(SPACE)),--steps 10 --width-mult 0.5 --image-size 64 --batch-size 32,--steps 4)
PROFILE_ARGS ?=
profile: setup
	$(CARGO) build --release -p agnas-cli
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/perf_profile.py --freq 299 --delay-ms $(PROFILE_DELAY_MS) -- \
		target/release/agnas bench step --space $(SPACE) --warmup 1 --threads 2 $(PROFILE_SHAPE) $(PROFILE_ARGS)

# Loader throughput: decoding + the ImageNet transforms on a folder of ImageNet-sized JPEGs (made once from the provided
# CIFAR-10 images), against torchvision's PIL pipeline with as many workers, same run.
BENCH_IMAGES ?= target/bench-images
CIFAR10_TGZ ?= ../shared/data/cifar10/cifar10-train-jpg.tar.gz
bench-loader: setup torchvision
	$(CARGO) build --release -p agnas-cli
	@test -d $(BENCH_IMAGES) || "$$(./scripts/setup-libtorch.sh)/bin/python" tools/make_loader_bench_images.py \
		--archive $(CIFAR10_TGZ) --out $(BENCH_IMAGES)
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/bench_loader.py --data $(BENCH_IMAGES) --workers 2
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/bench_loader.py --data $(BENCH_IMAGES) --workers 2 --eval

# torchvision and Pillow, for the transform fixtures and bench-loader only (the tests read committed fixtures).
torchvision: setup
	"$$(./scripts/setup-libtorch.sh)/bin/python" -m pip install --quiet --disable-pip-version-check \
		torchvision==0.26.0 pillow

fixtures: setup torchvision
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/make_fixtures.py
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/make_transform_fixtures.py

# agnas's ONNX exports of every space through the onnx checker and onnxruntime, against torch running the PyTorch
# exports (installs onnx and onnxruntime into the project's environment once).
check-onnx: setup
	$(CARGO) build --release -p agnas-cli
	"$$(./scripts/setup-libtorch.sh)/bin/python" -c "import onnx, onnxruntime" 2>/dev/null || \
		"$$(./scripts/setup-libtorch.sh)/bin/python" -m pip install --quiet --disable-pip-version-check onnx onnxruntime
	"$$(./scripts/setup-libtorch.sh)/bin/python" tools/check_onnx.py --agnas target/release/agnas
