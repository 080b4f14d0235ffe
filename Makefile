# Tandem's user-facing targets: make demo, make test, make bench.
# Each installs what is missing (scripts/deps.sh), configures, builds, then runs.
BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 12
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_OPTS ?=

.PHONY: demo test bench deps build build-san build-tsan test-tsan fuzz soak clean

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DTANDEM_WERROR=ON $(CMAKE_OPTS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-san: deps
	@cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON \
	  -DTANDEM_SANITIZE=address,undefined $(CMAKE_OPTS) >/dev/null
	@cmake --build $(BUILD_SAN) -j $(JOBS)

# ThreadSanitizer: only the threaded suites (net's, and the cluster's in
# test_mpc), so only their two binaries are built. One kernel thread (the
# cluster harness applies the config's threads = 1, OMP_NUM_THREADS for the
# rest): libgomp is not instrumented, and tests/tsan.supp covers what it
# still does (nothing else is suppressed).
TSAN_SUITES = cluster_link cluster_svc cluster_faults cluster_hostile cluster_hosts cluster_deploy
build-tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON \
	  -DTANDEM_SANITIZE=thread $(CMAKE_OPTS) >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS) --target test_net test_mpc

test-tsan: build-tsan
	@cd $(BUILD_TSAN) && export OMP_NUM_THREADS=1 CK_DEFAULT_TIMEOUT=600 \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" && \
	  ./test_net && for s in $(TSAN_SUITES); do CK_RUN_SUITE=$$s ./test_mpc || exit 1; done

# Every test, then every test again under AddressSanitizer + UBSan, then
# the threaded suites under ThreadSanitizer.
test: build build-san build-tsan
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE slow
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory fuzz

# Every libFuzzer target for FUZZ_SECONDS each (tests/fuzz/run.sh), in a
# clang tree of its own; skipped with a note when clang is absent.
fuzz: deps
	@if ! command -v clang >/dev/null 2>&1; then \
	  echo "fuzz: clang not found; the fuzz targets were not run"; exit 0; fi; \
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_FUZZ=ON \
	  $(CMAKE_OPTS) >/dev/null && \
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_all && \
	bash tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# The long soak of the daemons' memory (tests/loopback/test_soak.sh; `make
# test` runs its short version): 20 rounds of MLP queries at five batch sizes
# from two clients, a CNN query at 16 rows and a re-share per round.
soak: build
	@SOAK_ROUNDS=20 SOAK_CNN_BATCH=16 SOAK_POOL_MEM_MB=1024 TANDEM_SRC=$(CURDIR) \
	  bash tests/loopback/test_soak.sh $(CURDIR)/$(BUILD)/tandem

# The private Fashion-MNIST demo: P0, P1 and the dealer as separate processes
# on loopback (DEMO_OPTS, e.g. --images 1000 --model models/fashion_cnn.onnx).
DEMO_OPTS ?=
demo: build
	@$(BUILD)/tandem demo $(DEMO_OPTS)

# The standard benchmark set: bench/results.json and bench/online.png.
bench: build
	@bash scripts/deps.sh gnuplot-nox python3-torch
	@bash scripts/bench.sh $(BUILD)/tandem bench

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) $(BUILD_FUZZ)
