# kwaainet-edge top-level Makefile: non-recursive, Kbuild-style fragments.
#
#   make <board>_defconfig      write $(O)/.config from defconfigs/<board>_defconfig
#   make menuconfig             edit $(O)/.config        make savedefconfig  write it back
#   make                        build $(O)/kwnode         make run   deps + host build + start
#   make check [SAN=1]          host tests, then arm64 tests under qemu-aarch64
#   make help                   everything else
#
# O=dir selects the build directory (default: build). ARCH defaults to the .config's arch,
# else the host's; CROSS_COMPILE defaults to aarch64-linux-gnu- for arm64 on a non-arm64 host.

PYTHON   ?= /usr/bin/python3
O        ?= build
V        ?= 0
SAN      ?= 0
Q        := $(if $(filter 1,$(V)),,@)
HOSTARCH := $(shell uname -m | sed -e s/aarch64/arm64/)
SRCTREE  := $(CURDIR)

export KCONFIG_CONFIG := $(O)/.config
export KCONFIG_WARN_UNDEF_ASSIGN := y

config-targets := menuconfig defconfig %_defconfig savedefconfig olddefconfig listnewconfig
no-config-goals := $(config-targets) clean distclean help deps run check check-host \
                   check-arm64 check-san check-defconfigs check-kconfig check-kconfig-ranges \
                   check-interop check-stress fuzz bench \
                   bench-ml bench-net bench-kad sim sim-small \
                   deb image size
ifneq ($(filter-out $(no-config-goals),$(MAKECMDGOALS))$(if $(MAKECMDGOALS),,all),)
  -include $(O)/.config
endif

cfg-arch := $(patsubst "%",%,$(CONFIG_KW_ARCH))
ARCH ?= $(if $(cfg-arch),$(cfg-arch),$(HOSTARCH))
ifeq ($(ARCH),arm64)
  ifneq ($(HOSTARCH),arm64)
    CROSS_COMPILE ?= aarch64-linux-gnu-
    QEMU ?= qemu-aarch64
  endif
endif
CROSS_COMPILE ?=
QEMU ?=

ifneq ($(cfg-arch),)
  ifneq ($(cfg-arch),$(ARCH))
    $(error $(O)/.config is for $(cfg-arch) but ARCH=$(ARCH): use another O= or run a defconfig)
  endif
endif

ifeq ($(origin CC),default)
  CC := $(CROSS_COMPILE)gcc
endif
AR := $(CROSS_COMPILE)ar
NM := $(CROSS_COMPILE)nm

AUTOCONF := $(O)/include/generated/autoconf.h

KW_CFLAGS := -std=gnu11 -O2 -g -pipe -D_GNU_SOURCE \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-Wno-unused-parameter -Wno-missing-field-initializers -Wno-format-truncation \
	-Iinclude -I$(O)/include -I$(O)/proto -include $(AUTOCONF) -MMD -MP \
	$(patsubst "%",%,$(CONFIG_KW_CPU_CFLAGS)) $(EXTRA_CFLAGS)
KW_LDFLAGS := $(EXTRA_LDFLAGS)
ifeq ($(SAN),1)
  KW_CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  KW_LDFLAGS += -fsanitize=address,undefined
endif

# ---- collect the directory fragments --------------------------------------------------------
# Each <dir>/Makefile appends, relative to its directory, to:
#   obj-y       objects linked into libkw.a        CFLAGS_<file>.o  per-file flags (SIMD)
#   libs-y      linker flags (-lsodium ...)        alloc-ok-y  objects allowed to malloc (init)
#   proto-y     nanopb protos (proto/ only)        tests-y     cmocka tests (tests/ only)
#   tests-cpu-y tests that depend on CPU features (run under every qemu CPU model)
#   tests-extra-<test> extra sources for one test  tools-y     host tools (tools/ only)
# Every Makefile below these top folders is a fragment; paths in it are relative to its folder.
subdirs := $(sort $(patsubst %/Makefile,%,$(shell find app arch board kernel net ml proto tests tools \
	-name Makefile -not -path '*/node_modules/*' 2>/dev/null)))
objs :=
libs :=
alloc-ok :=
protos :=
tests :=
tests-cpu :=
tools :=
define collect
obj-y :=
libs-y :=
alloc-ok-y :=
proto-y :=
tests-y :=
tests-cpu-y :=
tools-y :=
include $(1)/Makefile
objs += $$(addprefix $(O)/$(1)/,$$(obj-y))
libs += $$(libs-y)
alloc-ok += $$(addprefix $(O)/$(1)/,$$(alloc-ok-y))
protos += $$(addprefix $(1)/,$$(proto-y))
tests += $$(addprefix $(1)/,$$(tests-y))
tests-cpu += $$(addprefix $(1)/,$$(tests-cpu-y))
tools += $$(addprefix $(1)/,$$(tools-y))
endef
$(foreach d,$(subdirs),$(eval $(call collect,$(d))))

pb-c := $(patsubst proto/%,$(O)/proto/%.pb.c,$(protos))
pb-h := $(patsubst proto/%,$(O)/proto/%.pb.h,$(protos))
pb-o := $(pb-c:.c=.o)
ifneq ($(protos),)
  libs += -lprotobuf-nanopb
endif
LDLIBS := $(sort $(libs)) -lpthread -lm

LIBKW   := $(O)/libkw.a
KWNODE  := $(O)/kwnode
test-bins := $(addprefix $(O)/,$(tests))
tool-bins := $(addprefix $(O)/,$(tools))

.DEFAULT_GOAL := all
.PHONY: all kwnode tests tools run-tests check check-host check-interop check-arm64 check-san check-alloc \
	check-defconfigs check-kconfig deps run clean distclean help fuzz bench menuconfig \
	savedefconfig olddefconfig listnewconfig defconfig bench-ml bench-net bench-kad print-ldlibs

all: $(KWNODE)
kwnode: $(KWNODE)

# ---- Kconfig (Debian python3-kconfiglib; warnings are errors, kconfiglib exits 0 on them) ----
kconfig_strict = 2> $(O)/.kconfig.log || { cat $(O)/.kconfig.log >&2; exit 1; }; \
	cat $(O)/.kconfig.log >&2; if grep -q 'warning:' $(O)/.kconfig.log; then \
	echo "error: Kconfig reported warnings (see above)" >&2; exit 1; fi

# An existing .config may name a symbol that a later Kconfig removed: olddefconfig drops it
# (as Linux does) and says so, but any other warning still fails.
kconfig_update = 2> $(O)/.kconfig.log || { cat $(O)/.kconfig.log >&2; exit 1; }; \
	sed -n 's/.*undefined symbol \(.*\)/note: $(subst /,\/,$(O))\/.config: dropped \1, no longer in Kconfig/p' \
	$(O)/.kconfig.log >&2; grep -v 'undefined symbol' $(O)/.kconfig.log >&2; \
	if grep -v 'undefined symbol' $(O)/.kconfig.log | grep -q 'warning:'; then \
	echo "error: Kconfig reported warnings (see above)" >&2; exit 1; fi

%_defconfig:
	$(Q)test -f defconfigs/$@ || { echo "error: no defconfigs/$@ (make help lists them)" >&2; exit 1; }
	$(Q)mkdir -p $(O)
	$(Q)$(PYTHON) -m defconfig --kconfig Kconfig defconfigs/$@ $(kconfig_strict)
	$(Q)echo defconfigs/$@ > $(O)/.defconfig_origin

defconfig:
	$(Q)$(MAKE) --no-print-directory $(if $(filter arm64,$(ARCH)),qemu_arm64,host)_defconfig

menuconfig:
	$(Q)mkdir -p $(O)
	$(Q)$(PYTHON) -m menuconfig Kconfig

olddefconfig:
	$(Q)mkdir -p $(O)
	$(Q)$(PYTHON) -m olddefconfig Kconfig $(kconfig_strict)

listnewconfig:
	$(Q)$(PYTHON) -m listnewconfig Kconfig

# Writes back to the defconfig the .config came from (Buildroot ergonomics), sorted.
savedefconfig:
	$(Q)out=$$(cat $(O)/.defconfig_origin 2>/dev/null || echo $(O)/defconfig); \
	$(PYTHON) -m savedefconfig --kconfig Kconfig --out $$out.tmp $(kconfig_strict); \
	grep -E '^CONFIG_KW_(ARCH|BOARD)_[A-Z0-9_]+=y$$' $(O)/.config >> $$out.tmp; \
	LC_ALL=C sort -u $$out.tmp > $$out && rm -f $$out.tmp && echo "wrote $$out"

# A Kconfig change (new symbol, new default) updates the .config first. The .config is an
# included makefile, so make then starts over and the object lists see the new symbols; were
# the update left to the autoconf.h rule, objects would be compiled for the new configuration
# but picked by the old one (an unresolved symbol at link time until the next make).
$(O)/.config: $(shell find . -name 'Kconfig*' -not -path './build/*' 2>/dev/null)
	@test -f $@ || { echo "error: no $(O)/.config; run 'make host_defconfig' (or another, see 'make help')" >&2; exit 1; }
	$(Q)$(PYTHON) -m olddefconfig Kconfig $(kconfig_update)
	$(Q)touch $@

$(AUTOCONF): $(O)/.config
	$(Q)mkdir -p $(dir $@)
	$(Q)$(PYTHON) -m olddefconfig Kconfig $(kconfig_update)
	$(Q)$(PYTHON) -m genconfig --header-path $@ Kconfig
	$(Q)touch $@

# ---- compile --------------------------------------------------------------------------------
# Every .proto has its nanopb .options beside it (its bounds): editing either regenerates.
$(O)/proto/%.pb.c $(O)/proto/%.pb.h: proto/%.proto proto/%.options
	$(Q)mkdir -p $(O)/proto
	$(Q)nanopb_generator.py -q -D $(O)/proto -I proto $< >/dev/null

$(O)/proto/%.pb.o: $(O)/proto/%.pb.c $(AUTOCONF)
	@echo "  CC      $@"
	$(Q)$(CC) $(filter-out -Werror -Wmissing-prototypes,$(KW_CFLAGS)) -c $< -o $@

$(O)/%.o: %.c $(AUTOCONF) | $(pb-h)
	@echo "  CC      $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(KW_CFLAGS) $(CFLAGS_$(notdir $@)) -c $< -o $@

$(LIBKW): $(objs) $(pb-o)
	@echo "  AR      $@"
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(KWNODE): $(O)/app/main.o $(LIBKW)
	@echo "  LD      $@"
	$(Q)$(CC) $(KW_CFLAGS) $(KW_LDFLAGS) -o $@ $< $(LIBKW) $(LDLIBS)

# ---- tests ----------------------------------------------------------------------------------
$(O)/tests/%: tests/%.c $(LIBKW) $(O)/tests/harness.o
	@echo "  LD      $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(KW_CFLAGS) -Itests $(KW_LDFLAGS) -o $@ $< $(tests-extra-$(notdir $@)) \
		$(O)/tests/harness.o $(LIBKW) $(LDLIBS) -lcmocka

# Host tools and benchmarks: tools/<dir>/<name>.c -> $(O)/tools/<dir>/<name>, linked like tests.
$(O)/tools/%: tools/%.c $(LIBKW)
	@echo "  LD      $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(KW_CFLAGS) $(KW_LDFLAGS) -o $@ $< $(tools-extra-$(notdir $@)) $(LIBKW) $(LDLIBS)

tools: $(tool-bins)

$(O)/tests/harness.o: tests/harness.c $(AUTOCONF) | $(pb-h)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(KW_CFLAGS) -Itests -c $< -o $@

tests: $(test-bins)

# Runs every test binary (under $(QEMU) when cross); all run even if one fails.
run-tests: $(test-bins)
	$(Q)sh tools/run-tests.sh "$(QEMU)" "$(O)" "$(tests)" "$(tests-cpu)"

# No heap allocation outside start-up code: undefined malloc-family symbols in any library
# object except the allow-listed init-only ones fail the build.
check-alloc: $(objs)
	$(Q)bad=0; for o in $(filter-out $(alloc-ok),$(objs)); do \
	  syms=$$($(NM) -u $$o | awk '{print $$2}' | grep -E '^(malloc|calloc|realloc|free|strdup|strndup|posix_memalign|aligned_alloc)$$'); \
	  if [ -n "$$syms" ]; then echo "error: $$o uses $$syms (hot-path code must use pools)"; bad=1; fi; \
	done; [ $$bad -eq 0 ] && echo "check-alloc: $(words $(filter-out $(alloc-ok),$(objs))) objects free of heap allocation (allowed at init: $(notdir $(alloc-ok)))"

# Layering (tools/layers.txt, tools/check-layers.sh): every kw_ symbol an object uses is
# defined in its own folder or in one the table puts below it, and no two folders use each
# other. Only the objects this configuration builds are read, plus kwnode's entry object
# (linked beside libkw.a, not in it), so objects left behind by a moved source do not count.
layer-objs = $(objs) $(pb-o) $(patsubst %.c,$(O)/%.o,$(wildcard app/main.c kernel/main.c))
.PHONY: check-layers
check-layers: $(KWNODE)
	$(Q)NM=$(NM) sh tools/check-layers.sh $(O) $(layer-objs)

# ---- the two README commands ----------------------------------------------------------------
deps:
	$(Q)sh tools/install-deps.sh

run: deps
	$(Q)$(MAKE) --no-print-directory O=build/host ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=build/host ARCH=$(HOSTARCH) CROSS_COMPILE=
	$(Q)mkdir -p -m 0700 build/host/data
	@echo "make run: kwnode is PID $$$$ (SIGTERM or Ctrl-C: it drains and exits 0)" >&2; \
	exec build/host/kwnode run --data-dir build/host/data $(RUN_ARGS)

check: deps
	$(Q)$(MAKE) --no-print-directory check-host
	$(Q)$(MAKE) --no-print-directory check-interop
	$(Q)$(MAKE) --no-print-directory check-stress
	$(Q)$(MAKE) --no-print-directory check-arm64
	$(Q)$(MAKE) --no-print-directory check-kconfig
	$(Q)$(MAKE) --no-print-directory check-defconfigs
	@echo "make check: all passes succeeded"

HOSTO := build/check-host$(if $(filter 1,$(SAN)),-san)
check-host:
	@echo "==== host tests ($(HOSTO), SAN=$(SAN)) ===="
	$(Q)$(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)sh tests/build/test_check_layers.sh
	$(Q)$(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=$(SAN) \
		all check-alloc check-layers
	$(Q)$(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=$(SAN) run-tests
	$(Q)sh tests/build/test_kwnode.sh $(HOSTO)/kwnode
	$(Q)sh tests/build/test_heap.sh $(HOSTO)/kwnode gcc
	$(Q)sh tests/build/test_dht.sh $(HOSTO)/kwnode
	$(Q)sh tests/build/test_dht_swarm.sh $(HOSTO)/kwnode 20
	$(Q)sh tests/build/test_pkg.sh $(HOSTO)
	$(Q)sh tests/build/test_systemd.sh $(HOSTO)
	$(Q)sh tests/build/test_image.sh $(HOSTO)
	$(Q)sh tests/build/test_status.sh $(HOSTO)/kwnode
	$(Q)sh tests/browser/test_status_page.sh $(HOSTO)/kwnode $(HOSTO)
	$(Q)sh tests/build/test_hivemind.sh $(HOSTO)/kwnode
	$(Q)sh tests/build/test_moe.sh $(HOSTO)/kwnode
	$(Q)sh tests/build/test_hivemind_servers.sh $(HOSTO)/kwnode
	$(Q)sh tests/build/test_avg.sh $(HOSTO)/kwnode
	$(Q)$(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=$(SAN) \
		$(HOSTO)/tools/model/kw_model_write $(HOSTO)/tools/model/kw_llama_run
	$(Q)sh tests/build/test_llama_numpy.sh $(HOSTO)
	$(Q)sh tests/build/test_demo.sh $(HOSTO)

# The client demo (doc/serve.md "Client and generate"): 4 servers on 127.0.0.1 found through
# the Hivemind DHT, a 32-token generation equal to a local run, then again with a server
# killed or stopped mid-generation. About 10 s; check-host runs the same script.
.PHONY: demo
demo:
	$(Q)$(MAKE) --no-print-directory O=$(O) ARCH=$(ARCH) CROSS_COMPILE=$(CROSS_COMPILE) SAN=$(SAN) \
		all $(O)/tools/model/kw_model_write $(O)/tools/model/kw_llama_run
	$(Q)sh tests/build/test_demo.sh $(O)

# js-libp2p interop on 127.0.0.1 (tests/interop; node_modules from tools/install-deps.sh).
check-interop:
	@echo "==== js-libp2p interop ($(HOSTO)) ===="
	$(Q)test -f $(HOSTO)/.config || $(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=$(SAN) all tools
	$(Q)node tests/interop/run.mjs $(HOSTO)/tools/interop/kw_interop_peer $(HOSTO)/kwnode
	$(Q)node tests/interop/kad.mjs $(HOSTO)/kwnode
	$(Q)node tests/interop/hivemind.mjs $(HOSTO)/tools/interop/kw_hm_peer
	$(Q)node tests/interop/avg.mjs $(HOSTO)/kwnode
	$(Q)node tests/interop/serve.mjs $(HOSTO)/kwnode

# Hostile load on loopback, about a minute (tests/stress/test_stress.sh; host build).
.PHONY: check-stress
check-stress:
	@echo "==== stress on loopback ($(HOSTO)) ===="
	$(Q)test -f $(HOSTO)/.config || $(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(HOSTO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=$(SAN) all tools
	$(Q)sh tests/stress/test_stress.sh $(HOSTO)

check-arm64:
	@echo "==== arm64 tests under qemu-aarch64 (build/check-arm64) ===="
	$(Q)$(MAKE) --no-print-directory O=build/check-arm64 ARCH=arm64 qemu_arm64_defconfig
	$(Q)$(MAKE) --no-print-directory O=build/check-arm64 ARCH=arm64 SAN=0 all check-alloc check-layers
	$(Q)$(MAKE) --no-print-directory O=build/check-arm64 ARCH=arm64 SAN=0 run-tests

check-san:
	$(Q)$(MAKE) --no-print-directory check SAN=1

# check-kconfig-ranges (also run by check-kconfig): the unit tests with every ranged Kconfig
# option at its minimum, then at its maximum (two host builds: 1m13s on 2 busy cores).
.PHONY: check-kconfig-ranges
check-kconfig:
	$(Q)sh tests/build/test_kconfig.sh
	$(Q)SAN=$(SAN) sh tests/build/test_kconfig_ranges.sh
check-kconfig-ranges:
	$(Q)SAN=$(SAN) sh tests/build/test_kconfig_ranges.sh

# Every board defconfig loads without Kconfig warnings and cross-builds an aarch64 kwnode.
check-defconfigs:
	$(Q)for d in rpi4 rpi5 rpizero2w; do \
	  $(MAKE) --no-print-directory O=build/check-$$d ARCH=arm64 $${d}_defconfig && \
	  $(MAKE) --no-print-directory O=build/check-$$d ARCH=arm64 SAN=0 all && \
	  file build/check-$$d/kwnode | grep -q 'ARM aarch64' && echo "$$d: $$(file -b build/check-$$d/kwnode | cut -d, -f1-2)" || exit 1; \
	done
	$(Q)sh tests/build/test_board_boot.sh build/check-rpi4 cortex-a72
	$(Q)sh tests/build/test_board_boot.sh build/check-rpi5 cortex-a76
	$(Q)sh tests/build/test_board_boot.sh build/check-rpizero2w cortex-a53

# ---- fuzzing (clang libFuzzer, host only) ---------------------------------------------------
# Builds libkw with clang + ASan/UBSan + fuzzer instrumentation in build/fuzz, links every
# tools/fuzz/fuzz_<name>.c against it and runs each for FUZZ_SECONDS (FUZZ_TARGETS=name...
# picks some). Seeds: tools/fuzz/corpus/<name>/. Crashes land in build/fuzz/artifacts/.
FUZZ_SECONDS ?= 600
fuzz: deps
	$(Q)sh tools/fuzz/run.sh "$(FUZZ_SECONDS)" "$(FUZZ_TARGETS)"

print-ldlibs:
	@echo $(LDLIBS)

# ---- benchmarks (host build in build/bench; figures side by side with their baselines) ------
BENCHO := build/bench
bench: bench-ml bench-net
bench-ml bench-net bench-kad: deps
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 all tools
	$(Q)sh tools/bench/run.sh $(BENCHO) $(@:bench-%=%)

# All-reduce rounds, 4 peers x 64 MiB, in-process and loopback TCP (doc/bench.md).
.PHONY: bench-avg
bench-avg: deps
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 all tools
	$(Q)sh tools/bench/run.sh $(BENCHO) avg

clean:
	rm -rf $(O)
distclean:
	rm -rf build

help:
	@echo "Configuration:"
	@echo "  <board>_defconfig  - write \$$(O)/.config from defconfigs/ ($(patsubst defconfigs/%,%,$(wildcard defconfigs/*_defconfig)))"
	@echo "  defconfig          - host_defconfig, or qemu_arm64_defconfig when ARCH=arm64"
	@echo "  menuconfig         - edit the configuration (curses)"
	@echo "  olddefconfig       - update .config after Kconfig or manual edits, new symbols at defaults"
	@echo "  savedefconfig      - write the minimal config back to the defconfig it came from"
	@echo "  listnewconfig      - list symbols the .config does not set yet"
	@echo "Build:"
	@echo "  all (default)      - \$$(O)/kwnode and \$$(O)/libkw.a"
	@echo "  tests / tools      - cmocka test binaries / host tools"
	@echo "  run                - install deps (as root), build host_defconfig in build/host, start a node"
	@echo "  check [SAN=1]      - deps, host tests, arm64 tests under qemu, Kconfig and board builds"
	@echo "  check-interop      - js-libp2p interop tests on 127.0.0.1 (host build)"
	@echo "  check-stress       - hostile load on loopback, about a minute (host build)"
	@echo "  demo               - 4 servers on 127.0.0.1, kwnode generate through the Hivemind DHT, a server killed mid-generation"
	@echo "  check-host / check-arm64 / check-kconfig / check-defconfigs / check-alloc"
	@echo "  check-layers       - no upward dependency or cycle between folders (tools/layers.txt)"
	@echo "  check-kconfig-ranges - unit tests with every ranged option at its min, then its max"
	@echo "  fuzz               - libFuzzer targets, FUZZ_SECONDS each (default 600)"
	@echo "  bench              - benchmarks (bench-ml, bench-net)"
	@echo "  bench-kad          - Kademlia lookups and memory: 100 C nodes vs 100 js-libp2p nodes (~10 min)"
	@echo "  bench-avg          - all-reduce rounds: 4 peers x 64 MiB fp32, in-process and loopback TCP"
	@echo "  bench-serve        - one 7B-shaped block: int8 vs fp32 decode, weight GB/s vs memcpy, prefill, KV,"
	@echo "                       loopback remote-call latency"
	@echo "  sim / sim-small    - Kademlia simulation: 10,000-node scenarios, real bootstrap, 3 processes / 200-node test (doc/sim.md)"
	@echo "  sim-full           - full-stack Kademlia simulation: 1,000 nodes with Noise + yamux (doc/sim.md)"
	@echo "  sim-hivemind       - full-stack Hivemind DHT simulation: 1,000 nodes, get after store with 10 % churn (doc/sim.md)"
	@echo "  size               - kwnode text/data/bss, arena used at start and idle RSS per defconfig (tools/size.sh)"
	@echo "  deb [BOARD=b]      - build BOARD (host, rpi4, rpi5, rpizero2w) in build/deb-BOARD and package it as a .deb"
	@echo "  image BASE=img     - copy of a Raspberry Pi OS image with the rpi4 .deb added [CONFIG=f BOARD=b] (doc/install.md)"
	@echo "  clean / distclean  - remove \$$(O) / all of build/"
	@echo "Variables: O=dir ARCH=x86_64|arm64 CROSS_COMPILE=prefix V=1 SAN=1"

-include $(shell find $(O) -name '*.d' 2>/dev/null)

# ---- Kademlia simulation (tests/sim, doc/sim.md; host build in build/sim) -------------------
# sim: the 10,000-node scenarios with the real bootstrap (every node joins through 3 earlier
# ones, looks itself up and refreshes its buckets): one process per word of SIM_SETS, side by
# side (plain, churn and put-get share one bootstrap and fork for their lookup phases; each
# adversarial network bootstraps in its own process), the first prints the table header and
# the others' rows follow; the warm start instead: SIM_ARGS="--prefill --settle 1000 --phase
# 25000". sim-small: the cmocka test (success and determinism assertions), a few seconds.
SIMO ?= build/sim
SIM_NODES ?= 10000
SIM_LOOKUPS ?= 10000
SIM_ARGS ?= --settle 60000 --phase 60000
SIM_SETS ?= plain,churn,put-get adv-grouped adv-exempt
.PHONY: sim sim-small
sim sim-small:
	$(Q)test -f $(SIMO)/.config || $(MAKE) --no-print-directory O=$(SIMO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(SIMO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 \
		$(SIMO)/tests/sim/$(if $(filter sim,$@),kw_kad_sim,test_kad_sim)
	$(Q)$(if $(filter sim,$@),set -e; sim="$(SIMO)/tests/sim/kw_kad_sim --nodes $(SIM_NODES) \
		--lookups $(SIM_LOOKUPS) $(SIM_ARGS)"; i=0; pids=; \
		for set in $(wordlist 2,99,$(SIM_SETS)); do i=$$((i + 1)); \
			$$sim --scenario $$set --no-header > $(SIMO)/sim-$$i.md & pids="$$pids $$!"; done; \
		rc=0; $$sim --scenario $(firstword $(SIM_SETS)) || rc=1; \
		for p in $$pids; do wait $$p || rc=1; done; \
		i=0; for set in $(wordlist 2,99,$(SIM_SETS)); do i=$$((i + 1)); cat $(SIMO)/sim-$$i.md; done; \
		exit $$rc,$(SIMO)/tests/sim/test_kad_sim)

# ---- packaging (tools/pkg, doc/install.md) ---------------------------------------------------
# deb: builds BOARD's defconfig in build/deb-BOARD (host: this machine's arch; the Pi boards
# cross-build for arm64) and writes build/deb-BOARD/kwaainet-edge_<version>_<arch>.deb.
# image BASE=raspios.img [CONFIG=node.conf]: a copy of BASE (Raspberry Pi OS Lite arm64) in
# build/image/ with BOARD's .deb (default rpi4) added to its ext4 root by debugfs, no mount
# (tools/pkg/mkimage.sh). Not part of check; tests/build/test_image.sh tests the tool.
BOARD ?= host
DEBO ?= build/deb-$(BOARD)
deb-arch = $(if $(filter host,$(BOARD)),$(HOSTARCH),arm64)
deb-cross = $(if $(filter host,$(BOARD)),CROSS_COMPILE=,)
.PHONY: deb image
deb:
	$(Q)test -f $(DEBO)/.config || $(MAKE) --no-print-directory O=$(DEBO) ARCH=$(deb-arch) \
		$(deb-cross) $(BOARD)_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(DEBO) ARCH=$(deb-arch) $(deb-cross) SAN=0 all
	$(Q)sh tools/pkg/mkdeb.sh $(DEBO)
image-board = $(if $(filter command line,$(origin BOARD)),$(BOARD),rpi4)
image:
	$(Q)test -n "$(BASE)" || { echo "make image: BASE=raspios-lite-arm64.img is required (doc/install.md)" >&2; exit 2; }
	$(Q)$(MAKE) --no-print-directory deb BOARD=$(image-board)
	$(Q)sh tools/pkg/mkimage.sh "$(BASE)" "$$(ls build/deb-$(image-board)/kwaainet-edge_*.deb | tail -n 1)" \
		"$(CONFIG)" build/image

# size: every defconfig built in build/size-BOARD (arm64 ones cross-built, run under qemu) and
# measured by tools/size.sh, which also builds them; zero2w-native is rpizero2w's arena,
# pools and limits on this machine's arch, run without qemu. Not part of check.
SIZE_BOARDS ?= host rpi4 rpi5 rpizero2w qemu_arm64 zero2w-native
.PHONY: size
size:
	$(Q)MAKE="$(MAKE)" HOSTARCH=$(HOSTARCH) sh tools/size.sh $(SIZE_BOARDS)

# sim-full: the full-stack simulation (doc/sim.md, "Full-stack run"): 1,000 complete nodes
# (swarm, Noise, yamux, identify, kad) over simulated sockets, then 2,000 lookups. Not part of
# make check; its small-N cmocka test (test_kad_full) is part of run-tests.
SIM_FULL_NODES ?= 1000
SIM_FULL_LOOKUPS ?= 2000
SIM_FULL_ARGS ?=
.PHONY: sim-full
sim-full:
	$(Q)test -f $(SIMO)/.config || $(MAKE) --no-print-directory O=$(SIMO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(SIMO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 \
		$(SIMO)/tests/sim/kw_kad_full
	$(Q)$(SIMO)/tests/sim/kw_kad_full --nodes $(SIM_FULL_NODES) --lookups $(SIM_FULL_LOOKUPS) \
		$(SIM_FULL_ARGS)

# sim-hivemind: the full-stack Hivemind DHT simulation (doc/sim.md, "Hivemind DHT run"): 1,000
# complete nodes with the Hivemind DHT started as app/hivemind.c starts it, 1,000 stores, then
# 2,000 gets while 10 % of the nodes leave and rejoin. Built in $(SIMHMO): host_defconfig with
# the SIM_HM_POOLS sizes (rpizero2w's; 1,000 nodes at the host sizes need about 8 GiB; the old
# lines go first: kconfig refuses a symbol set twice). Not part of make check; its small-N
# cmocka test (test_hm_full) is part of run-tests.
SIMHMO ?= build/sim-hm
SIM_HM_POOLS ?= CONFIG_KW_NET_SWARM_BUFFERS=16 CONFIG_KW_NET_SWARM_BUF_FRAMES=1 \
	CONFIG_KW_NET_SWARM_CHUNKS=48 CONFIG_KW_NET_KAD_BUFFERS=4
SIM_HM_NODES ?= 1000
SIM_HM_STORES ?= 1000
SIM_HM_GETS ?= 2000
SIM_HM_CHURN ?= 10
SIM_HM_ARGS ?=
.PHONY: sim-hivemind
sim-hivemind:
	$(Q)test -f $(SIMHMO)/.config || { $(MAKE) --no-print-directory O=$(SIMHMO) ARCH=$(HOSTARCH) \
		CROSS_COMPILE= host_defconfig && for kv in $(SIM_HM_POOLS); do k=$${kv%%=*}; \
		sed -i "/^$$k=/d; /^# $$k is not set/d" $(SIMHMO)/.config; echo "$$kv" >> $(SIMHMO)/.config; \
		done && $(MAKE) --no-print-directory O=$(SIMHMO) ARCH=$(HOSTARCH) CROSS_COMPILE= olddefconfig; }
	$(Q)$(MAKE) --no-print-directory O=$(SIMHMO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 \
		$(SIMHMO)/tests/sim/kw_hm_full
	$(Q)$(SIMHMO)/tests/sim/kw_hm_full --nodes $(SIM_HM_NODES) --stores $(SIM_HM_STORES) \
		--gets $(SIM_HM_GETS) --churn $(SIM_HM_CHURN) $(SIM_HM_ARGS)

# ---- ml/block benchmark alone (also part of bench-ml; doc/bench.md, doc/ml-block.md) --------
.PHONY: bench-block
bench-block: deps
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 all tools
	$(Q)sh tools/bench/run.sh $(BENCHO) ml_block

# ---- serving figures of one 7B-shaped block: int8 vs fp32 decode, weight bytes vs memcpy,
# prefill, KV sessions per MiB, loopback remote-call latency (tools/bench/bench_serve.c,
# doc/bench.md) ---------------------------------------------------------------------------
.PHONY: bench-serve
bench-serve: deps
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= host_defconfig
	$(Q)$(MAKE) --no-print-directory O=$(BENCHO) ARCH=$(HOSTARCH) CROSS_COMPILE= SAN=0 all tools
	$(Q)sh tools/bench/run.sh $(BENCHO) serve
