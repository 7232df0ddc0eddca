# moebench build. `make run` and `make test` are the two commands README gives;
# both start with the deps step, which installs missing Debian packages.

ifeq ($(origin CC),default)
CC       := gcc
endif
ifeq ($(origin CXX),default)
CXX      := g++
endif
BUILD    ?= build
PKGS     := openblas hwloc libcjson ompi benchmark
DEB_PKGS := libopenblas-dev libopenmpi-dev openmpi-bin libhwloc-dev libcjson-dev \
            libbenchmark-dev libcmocka-dev gnuplot-nox chromium pkg-config g++

# pkg-config is only asked once the deps step has run (it may be what
# installs the .pc files), so these are recursively expanded.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Werror
# clang reports an `omp simd` loop it chose not to vectorise as a warning
# (-Wpass-failed); the hint is an optimisation, not a correctness matter.
ifneq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
WARN     += -Wno-pass-failed
endif
SAN      ?=
CFLAGS_ALL = -std=c11 $(WARN) $(OPT) $(SAN) -D_GNU_SOURCE -fopenmp -MMD -MP $(PKG_CFLAGS) -I. $(CFLAGS)
CXXFLAGS_ALL = -std=c++17 $(WARN) $(OPT) $(SAN) -D_GNU_SOURCE -fopenmp -MMD -MP $(PKG_CFLAGS) -I. $(CXXFLAGS)
LDLIBS_ALL = $(SAN) -fopenmp $(PKG_LIBS) -lstdc++ -lm -ldl -lpthread $(LDLIBS)

HARNESS  := harness/mb.c harness/params.c harness/stats.c harness/device.c harness/result.c \
            harness/sysinfo.c harness/sysinfo_pci.c harness/cost.c harness/runner.c harness/cli.c harness/cmd_run.c \
            harness/report.c harness/world.c harness/watchdog.c harness/replay.c harness/compare.c harness/cmd_compare.c harness/cmd_micro.c harness/calibration.c harness/check.c harness/cmd_check.c \
            harness/report_esc.c harness/report_doc.c harness/report_svg.c harness/report_plot.c harness/report_gnuplot.c
SUITES   := suites/presets.c suites/ref.c suites/gmm.c suites/gmm_check.c suites/gemm.c suites/alltoall.c suites/suite.c suites/attention.c suites/ref_attn.c suites/train_step.c suites/train_step_graph.c
HARDWARE := hardware/specs/specs.c hardware/null/null.c hardware/cpu/cpu.c hardware/cpu/cpu_comm.c hardware/cpu/cpu_attn.c hardware/cpu/cpu_train.c hardware/cpu/cpu_bf16.c \
            $(wildcard hardware/power/*.c hardware/net/*.c)
# The Google Benchmark shim (C++ inside, extern "C" outside).
GBENCH   := $(wildcard harness/gbench/*.cc)
LIB_SRC  := $(HARNESS) $(SUITES) $(HARDWARE)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GBENCH:%.cc=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/harness/main.o
BIN      := $(BUILD)/moebench

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

GIT_COMMIT := $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
GIT_DIRTY  := $(shell test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo 1 || echo 0)

.PHONY: all deps run test unit e2e asan clean bench perf-gate bench-compare fuzz
.DEFAULT_GOAL := all

all: $(BIN)

deps:
	@./ci/deps.sh $(DEB_PKGS)

$(BIN): $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# Build facts baked into sysinfo.o; regenerated when the commit or flags change.
$(BUILD)/buildinfo.h: FORCE
	@mkdir -p $(BUILD)
	@printf '#define MB_GIT_COMMIT "%s"\n#define MB_GIT_DIRTY %s\n#define MB_CFLAGS "%s"\n#define MB_CC "%s"\n' \
	  '$(GIT_COMMIT)' '$(GIT_DIRTY)' '$(strip -std=c11 $(WARN) $(OPT) $(SAN) -D_GNU_SOURCE -fopenmp $(CFLAGS))' '$(CC)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(BUILD)/harness/sysinfo.o: $(BUILD)/buildinfo.h
$(BUILD)/harness/sysinfo.o: CFLAGS_ALL += -I$(BUILD)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_OBJ) $(LDLIBS_ALL) -lcmocka

# The quick workload, then the report of the very file it wrote (its
# "result:" line), keeping the run's exit code.
run: deps
	@$(MAKE) --no-print-directory all
	@{ ./$(BIN) run -b cpu --preset quick -o results; echo $$? > $(BUILD)/run.rc; } | tee $(BUILD)/run.out
	@f=$$(sed -n 's/^result: //p' $(BUILD)/run.out | tail -n 1); \
	  if [ -z "$$f" ]; then echo "make run: the run wrote no result file"; exit 2; fi; \
	  ./$(BIN) report "$$f" -o report && exit $$(cat $(BUILD)/run.rc)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; OMP_NUM_THREADS=2 ./$$t; done

JSONQ := $(BUILD)/tests/jsonq
$(JSONQ): tests/tools/jsonq.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LDLIBS_ALL)

# The alltoall suite against a bare MPI_Alltoallv loop (ci/bench-alltoall.sh).
A2A_BARE := $(BUILD)/tests/a2a_bare
$(A2A_BARE): tests/tools/a2a_bare.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_OBJ) $(LDLIBS_ALL)

e2e: $(BIN) $(JSONQ)
	@set -e; for t in tests/e2e/*.sh; do echo "== $$t"; \
	  MOEBENCH=./$(BIN) JSONQ=./$(JSONQ) sh $$t; done

# The sanitizer build lives in its own directory and runs the same tests.
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer' \
	  SAN='-fsanitize=address,undefined -fno-sanitize-recover=all' unit e2e

test: deps
	@$(MAKE) --no-print-directory all unit e2e
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(MAKE) --no-print-directory asan
	@echo "all tests passed"

bench: $(BIN)
	sh ci/bench-cpu.sh

perf-gate: $(BIN) $(JSONQ)
	sh ci/perf-gate.sh

bench-compare: $(BIN) $(JSONQ)
	sh ci/bench-compare.sh

# libFuzzer on the result reader and `moebench check` (clang; not part of `make test`)
FUZZ_SECONDS ?= 60
fuzz:
	sh ci/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)
