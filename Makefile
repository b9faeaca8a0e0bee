# SPDX-License-Identifier: GPL-2.0
# kmmu, the front door.
#
#   make test    build the core in userspace (ASan+UBSan, TSan) and kmmu.ko,
#                run every test, end with "N passed, N failed, N skipped"
#   make vm-test run the selftests on the dev backend in QEMU guests booting
#                Debian's kernels, with Intel- and AMD-vendor CPUs
#   make mutation-test
#                build the core once per deliberate defect; the suites must
#                fail on every one
#   make bench   build the benchmark drivers and run the default suite
#   make serve   the regression dashboard on 127.0.0.1:8080, with a
#                project-local PostgreSQL and the results/ imported
#   make         build everything without running it
#
# Installs the Debian packages it needs when they are missing
# (scripts/install-deps.sh; needs root).

BUILD		:= build
CC		:= gcc
KSRC_TAR	?= $(lastword $(sort $(wildcard /usr/src/linux-source-*.tar.xz)))

CORE_SRCS	:= $(sort $(wildcard kmod/core/*.c))
HOST_SRCS	:= $(sort $(wildcard kmod/user/*.c))
LIB_SRCS	:= selftests/lib/kmmu_lib.c
# The dev variant has no userspace core: it runs on /dev/kmmu only.
LIB_OBJS	= $(patsubst %.c,$(BUILD)/$(1)/obj/%.o,$(if $(filter dev,$(1)),\
		  $(LIB_SRCS) selftests/lib/kmmu_user_absent.c,$(CORE_SRCS) $(HOST_SRCS) $(LIB_SRCS)))

UNIT_TESTS	:= $(sort $(basename $(notdir $(wildcard selftests/unit/*_test.c))))
KMMU_TESTS	:= $(sort $(basename $(notdir $(wildcard selftests/kmmu/*_test.c))))
# The concurrency tests, built once more under ThreadSanitizer.
TSAN_TESTS	:= $(filter aging_test stress_test dirty_log_test spp_test,$(KMMU_TESTS))
TSAN_UNIT_TESTS	:= $(filter rmap_test,$(UNIT_TESTS))
BENCHES		:= populate dirty_log aging split floor zap_latency spp

# -Wno-unused-parameter: kernel-style callbacks and os.h hooks take
# arguments that one host or the other does not use.
WARN		:= -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS	:= -D_GNU_SOURCE -Ikmod/include/uapi -Ikmod/user -Iselftests/lib -isystem $(BUILD)/ksft \
		   -isystem /usr/include/postgresql
CFLAGS_asan	:= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
		   -fno-sanitize-recover=all
# make mutation-test builds the core with one deliberate defect: MUTANT=<NAME>.
ifneq ($(MUTANT),)
CFLAGS_asan	+= -DKMMU_MUTANT=KMMU_MUTANT_$(MUTANT)
endif
# TSan does not model fences; every access they order is atomic anyway.
CFLAGS_tsan	:= -O1 -g -fsanitize=thread -Wno-tsan
CFLAGS_rel	:= -O2 -g
# The bench drivers for /dev/kmmu alone, without the userspace core (three
# quarters of the drivers' build): make bench-drivers-dev, what ansible/
# builds on a bench host.
CFLAGS_dev	:= -O2 -g -DKMMU_LIB_NO_USER
# libFuzzer needs clang.
CC_fuzz		:= clang
CFLAGS_fuzz	:= -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
LDFLAGS_fuzz	:= -fsanitize=fuzzer,address,undefined
# For the QEMU guest, which has no shared libraries.
CFLAGS_static	:= -O2 -g
LDFLAGS_static	:= -static
LDLIBS		:= -lurcu -lpthread
# The dev variant has no userspace core, the one user of liburcu.
LDLIBS_dev	:= -lpthread

TEST_BINS	:= $(addprefix $(BUILD)/asan/unit/,$(UNIT_TESTS)) \
		   $(addprefix $(BUILD)/asan/kmmu/,$(KMMU_TESTS)) \
		   $(addprefix $(BUILD)/tsan/kmmu/,$(TSAN_TESTS)) \
		   $(addprefix $(BUILD)/tsan/unit/,$(TSAN_UNIT_TESTS))
BENCH_BINS	:= $(addprefix $(BUILD)/rel/bench/,$(BENCHES))
BENCH_DEV_BINS	:= $(addprefix $(BUILD)/dev/bench/,$(BENCHES))
FUZZ_BINS	:= $(BUILD)/fuzz/fuzz/api_fuzz
# The regression service: the daemon, and its tests built under ASan+UBSan.
SERVICE_SRCS	:= $(sort $(wildcard service/*.c))
SERVICE_LIBS	:= -lmicrohttpd -ljansson -lpq -lm -lpthread
SERVICE_BINS	:= $(BUILD)/asan/service/kmmu-regressd $(BUILD)/rel/service/kmmu-regressd
SERVICE_TEST_BINS := $(addprefix $(BUILD)/asan/service/,detect_test jsonschema_test jsonschema_cli)
# What the QEMU guests run on the dev backend: static, no sanitizers; and
# the KVM user of their coexistence stage.
VM_TEST_BINS	:= $(addprefix $(BUILD)/static/kmmu/,$(KMMU_TESTS))
VM_HELPER_BINS	:= $(BUILD)/static/vm/kvm_hold

all: $(TEST_BINS) $(BENCH_BINS) $(BENCH_DEV_BINS) $(SERVICE_BINS) kmod

deps:
	@sh scripts/install-deps.sh build kernel vm service ansible

# kselftest_harness.h comes from Debian's linux-source, not from this tree.
$(BUILD)/ksft/kselftest_harness.h:
	@test -n "$(KSRC_TAR)" || { echo "no /usr/src/linux-source-*.tar.xz: run make deps" >&2; exit 1; }
	@mkdir -p $(BUILD)/ksft
	tar -xJf $(KSRC_TAR) -C $(BUILD)/ksft --strip-components=4 --wildcards \
		'*/tools/testing/selftests/kselftest_harness.h' \
		'*/tools/testing/selftests/kselftest.h'
	@touch $@

define variant
$(BUILD)/$(1)/obj/%.o: %.c
	@mkdir -p $$(dir $$@)
	$$(or $$(CC_$(1)),$$(CC)) $$(CPPFLAGS) $$(WARN) $$(CFLAGS_$(1)) -MMD -MP -c $$< -o $$@

# Only the selftests need the kselftest headers; the core, the bench drivers
# and the service build without linux-source (as on a bench host).
$(patsubst %,$(BUILD)/$(1)/obj/selftests/unit/%.o,$(UNIT_TESTS)) \
$(patsubst %,$(BUILD)/$(1)/obj/selftests/kmmu/%.o,$(KMMU_TESTS)): $(BUILD)/ksft/kselftest_harness.h

$(BUILD)/$(1)/libkmmu.a: $(call LIB_OBJS,$(1))
	@rm -f $$@
	ar rcs $$@ $$^

$(BUILD)/$(1)/unit/%: $(BUILD)/$(1)/obj/selftests/unit/%.o $(BUILD)/$(1)/libkmmu.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(LDLIBS)

$(BUILD)/$(1)/kmmu/%: $(BUILD)/$(1)/obj/selftests/kmmu/%.o $(BUILD)/$(1)/libkmmu.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(LDLIBS)

$(BUILD)/$(1)/bench/%: $(BUILD)/$(1)/obj/bench/%.o $(BUILD)/$(1)/obj/bench/bench_util.o \
		       $(BUILD)/$(1)/obj/bench/results.o $(BUILD)/$(1)/libkmmu.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(or $$(LDLIBS_$(1)),$$(LDLIBS)) -ljansson

$(BUILD)/$(1)/service/kmmu-regressd: $(patsubst %.c,$(BUILD)/$(1)/obj/%.o,$(SERVICE_SRCS))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$^ $(SERVICE_LIBS)

$(BUILD)/$(1)/service/detect_test: $(BUILD)/$(1)/obj/service/tests/detect_test.o \
				    $(BUILD)/$(1)/obj/service/detect.o
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$^ -lm

$(BUILD)/$(1)/service/jsonschema_%: $(BUILD)/$(1)/obj/service/tests/jsonschema_%.o \
				    $(BUILD)/$(1)/obj/service/jsonschema.o
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$^ -ljansson

$(BUILD)/$(1)/fuzz/%: $(BUILD)/$(1)/obj/selftests/fuzz/%.o $(BUILD)/$(1)/libkmmu.a
	@mkdir -p $$(dir $$@)
	$$(or $$(CC_$(1)),$$(CC)) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach v,asan tsan rel dev static fuzz,$(eval $(call variant,$(v))))

$(BUILD)/static/vm/kvm_hold: selftests/vm/kvm_hold.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -static -o $@ $<

kmod:
	$(MAKE) -C kmod W=1

test: deps
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j$(shell nproc) $(TEST_BINS) $(BENCH_BINS) $(BENCH_DEV_BINS) $(VM_TEST_BINS) $(VM_HELPER_BINS) \
		$(FUZZ_BINS) $(SERVICE_BINS) $(SERVICE_TEST_BINS) || exit 1; \
	BUILD_SECONDS=$$(($$(date +%s) - start)) BUILD=$(BUILD) KSRC_TAR=$(KSRC_TAR) \
		VM_TEST_BINS="$(VM_TEST_BINS)" FUZZ_BINS="$(FUZZ_BINS)" \
		SERVICE_TEST_BINS="$(SERVICE_TEST_BINS)" BENCHES="$(BENCHES)" sh selftests/run_tests.sh $(TEST_BINS)

# Only the QEMU test bench (dev backend, every installed kernel, both vendors).
vm-test: deps
	@$(MAKE) --no-print-directory $(VM_TEST_BINS) $(VM_HELPER_BINS)
	@BUILD=$(BUILD) sh selftests/vm/run_vm_tests.sh $(VM_TEST_BINS)

# The default suite (a few minutes at most on 2 cores), or BENCH_SUITE=full
# (an hour or more): what each runs is in bench/suite.sh.  Every driver
# appends to one JSON document under results/ (schema: bench/README.md); a
# table of it is printed at the end.
RESULTS		:= results/$(shell date -u +%Y%m%dT%H%M%SZ)-$(shell git rev-parse --short HEAD 2>/dev/null || echo nogit).json

# The drivers alone, without installing anything; bench-drivers-dev, the
# ones that run on /dev/kmmu only (what ansible/ builds on a bench host;
# BENCH_VARIANT=dev sh bench/suite.sh runs them).
bench-drivers: $(BENCH_BINS)

bench-drivers-dev: $(BENCH_DEV_BINS)

bench: deps $(BENCH_BINS)
	@mkdir -p results
	@BUILD=$(BUILD) BENCH_SUITE=$(or $(BENCH_SUITE),default) sh bench/suite.sh $(RESULTS)
	@python3 bench/report.py $(RESULTS)
	@# With a service: send this document and any earlier one it has not
	@# got yet; one it cannot take now stays pending for the next run.
	@if [ -n "$${KMMU_SERVICE_URL:-}" ]; then \
		python3 scripts/submit-results.py results; rc=$$?; \
		[ $$rc -ne 3 ] || echo "bench: the service is unreachable; results/ keeps the run"; \
		[ $$rc -ne 4 ] || echo "bench: the service did not take the token; results/ keeps the run"; \
		[ $$rc -eq 0 ] || [ $$rc -eq 3 ]; \
	fi

# kmmu's dirty_log against KVM's dirty_log_perf_test (built from Debian's
# linux-source) on the same work, both in one QEMU guest whose nested SVM
# gives KVM its TDP MMU; prints both sets of timings and their ratio.
# Options: KVM_COMPARE_ARGS (bench/kvm-compare -h), e.g. "-b 32m -i 2".
kvm-compare: deps
	@BUILD=$(BUILD) KSRC_TAR=$(KSRC_TAR) sh bench/kvm-compare $(KVM_COMPARE_ARGS)

# ansible/: yamllint and ansible-lint, then deploy.yml end to end on three
# QEMU guests (selftests/ansible/run.sh; the guest image is cached in
# KMMU_ANSIBLE_CACHE, /var/cache/kmmu/ansible-image by default).
ansible-lint: deps
	@sh selftests/ansible/lint.sh

ansible-test: deps
	@sh selftests/ansible/lint.sh && BUILD=$(BUILD) sh selftests/ansible/run.sh

# Every mutant of selftests/mutation/mutants.txt, each of which the suites
# must kill: prints "mutants: N killed, N survived", fails on a survivor.
mutation-test: deps
	@BUILD=$(BUILD) sh selftests/mutation/run.sh

# Only what the service needs: no QEMU, no kernel images.
serve:
	@sh scripts/install-deps.sh serve
	@$(MAKE) --no-print-directory $(BUILD)/rel/service/kmmu-regressd
	@BUILD=$(BUILD) sh scripts/serve.sh

clean:
	rm -rf $(BUILD)
	-$(MAKE) -C kmod clean

.PHONY: all deps kmod test vm-test mutation-test bench bench-drivers bench-drivers-dev ansible-lint ansible-test kvm-compare serve clean
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
