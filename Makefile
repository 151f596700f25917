# txval — build, test, run, bench.
#
#   make                      build build/ngx_http_txval_module.so against
#                             Debian's nginx (nginx-dev)
#   make NGINX_SRC=/path      build against another nginx source tree
#                             (module and a matching nginx binary)
#   make test                 build, then run the t/ suite with prove;
#                             changes nothing outside the repository
#                             (and its private directories under $TMPDIR)
#   make test-deb             make deb's package installed for real into
#                             this machine (dpkg -i), served by the system
#                             nginx, removed and purged (root; CI)
#   make test-clone           a fresh clone in a mktemp -d (mode 0700):
#                             make run, the README's first curl, Ctrl-C,
#                             then make test there (CI)
#   make install              the module into $(MODULES_DIR), where
#                             load_module modules/ngx_http_txval_module.so
#                             finds it (DESTDIR honoured)
#   make test SANITIZE=address   the same suite on an ASan+UBSan build
#   make asan / make valgrind the suite under AddressSanitizer / memcheck
#   make run                  nginx with the example config on :8080
#   make bench                benchmarks (bench/), bench/RESULTS.md
#   make bench-callgrind      instructions per request on the hot paths
#   make bench-digest         the native cost of the content fingerprint
#                             and the body hash (bench/digest.sh)
#   make bench-ab             A/B of two builds in one run (bench/ab.sh):
#                             AB_A=rev (default HEAD~1) against AB_B=rev
#                             (default this tree's build); AB_ROUNDS,
#                             AB_SECONDS, AB_SCENARIOS, AB_CALLGRIND=1
#   make faults               backends killed, stalled, restarted, 10 reloads,
#                             a worker killed in the shm lock, under load
#   make soak                 2M mixed requests, Redis and Postgres restarted
#                             during the run; worker RSS, fds, connections
#                             flat (SOAK_REQUESTS=N to shorten)
#   make fuzz                 libFuzzer over the pure C units
#                             (FUZZ_SECONDS each, default 60)
#   make deb                  build/libnginx-mod-http-txval_<version>_<arch>.deb
#                             for Debian's nginx (scripts/deb.sh)
#   make lint                 shellcheck, the compose file and the Dockerfile,
#                             Prometheus config and rules, the dashboard's
#                             metric names (scripts/lint.sh)
#   make dashboard-snapshot   docs/dashboard.png: the Grafana dashboard's
#                             queries over a local run, plotted by gnuplot
#                             (bench/dashboard-snapshot.sh; in unshare -n)

SHELL       := /bin/bash
TOP         := $(CURDIR)
NGINX_SRC   ?=
SANITIZE    ?=
PROVE_FLAGS ?=
DEPS        := $(TOP)/scripts/deps.sh

ifeq ($(SANITIZE),)
  VARIANT   := $(if $(NGINX_SRC),custom,debian)
else
  VARIANT   := $(if $(NGINX_SRC),custom,debian)-$(SANITIZE)
endif

BUILD       := $(TOP)/build/$(VARIANT)
MODULE      := $(TOP)/build/ngx_http_txval_module.so
SRCS        := $(wildcard ngx_http_txval_module/*.c ngx_http_txval_module/*.h)

# Debian's nginx-dev has headers only: the module is built for
# /usr/sbin/nginx, and a sanitizer build is loaded into it with the
# sanitizer runtime preloaded. A full source tree (NGINX_SRC) also gives
# the nginx binary, so that module and binary match.
ifneq ($(NGINX_SRC),)
  MODULE    := $(BUILD)/ngx_http_txval_module.so
  NGINX_BIN := $(BUILD)/src/objs/nginx
  MAKE_WHAT := build modules
else ifneq ($(SANITIZE),)
  MODULE    := $(BUILD)/ngx_http_txval_module.so
  NGINX_BIN := /usr/sbin/nginx
  MAKE_WHAT := modules
else
  NGINX_BIN := /usr/sbin/nginx
  MAKE_WHAT := modules
endif

ifneq ($(SANITIZE),)
  SAN_FLAGS := -fsanitize=$(SANITIZE),undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
  SAN_CONF  := --with-cc-opt="-g -O1 $(SAN_FLAGS)" \
               --with-ld-opt="$(SAN_FLAGS)"
endif

# where Debian's nginx (and nginx.org's packages) look for modules: its
# "modules/" directory
MODULES_DIR ?= /usr/lib/nginx/modules

.PHONY: all deps test test-deb test-clone install asan valgrind run bench \
        bench-callgrind bench-digest bench-ab fuzz faults soak clean deb lint \
        dashboard-snapshot

all: $(MODULE)

deps:
	@$(DEPS) build

$(BUILD)/.configured: config
	@$(DEPS) build $(if $(SANITIZE),asan)
	@scripts/configure.sh "$(BUILD)" "$(NGINX_SRC)" $(SAN_CONF)
	@touch $@

$(MODULE): $(BUILD)/.configured $(SRCS)
	$(MAKE) -C $(BUILD)/src -f objs/Makefile $(MAKE_WHAT)
	@# a new file, never overwritten in place: a running nginx keeps its copy
	cp $(BUILD)/src/objs/ngx_http_txval_module.so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)

test: $(MODULE)
	@$(DEPS) build test $(if $(SANITIZE),asan)
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) SANITIZE=$(SANITIZE) \
	    PROVE_FLAGS="$(PROVE_FLAGS)" scripts/test.sh

# the package installed into this machine: its own target, as it changes
# the host while it runs (and puts everything back)
test-deb: $(MODULE)
	@$(DEPS) build test deb
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) SANITIZE=$(SANITIZE) \
	    TESTS="t/host/510-deb-install.t" PROVE_FLAGS="$(PROVE_FLAGS)" \
	    scripts/test.sh

test-clone:
	@scripts/test-clone.sh

install: $(MODULE)
	@[ -z "$(SANITIZE)" ] || { echo "make install: a SANITIZE build is not for installing" >&2; exit 1; }
	install -d $(DESTDIR)$(MODULES_DIR)
	install -m 0644 $(MODULE) $(DESTDIR)$(MODULES_DIR)/ngx_http_txval_module.so

asan:
	$(MAKE) test SANITIZE=address

valgrind: $(MODULE)
	@$(DEPS) build test valgrind
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) \
	    TEST_NGINX_USE_VALGRIND=1 PROVE_FLAGS="$(PROVE_FLAGS)" scripts/test.sh

run: $(MODULE)
	@$(DEPS) build run
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) scripts/run.sh

bench: $(MODULE)
	@$(DEPS) build run bench valgrind
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) bench/run.sh

# the package is for Debian's nginx: scripts/deb.sh refuses NGINX_SRC and
# SANITIZE builds
deb: $(MODULE)
	@$(DEPS) build deb
	@TXVAL_MODULE=$(MODULE) NGINX_SRC="$(NGINX_SRC)" SANITIZE="$(SANITIZE)" \
	    scripts/deb.sh $(TOP)/build

lint:
	@$(DEPS) lint
	@scripts/lint.sh

bench-digest:
	@$(DEPS) build
	@bench/digest.sh

dashboard-snapshot: $(MODULE)
	@$(DEPS) build run dashboard
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) bench/dashboard-snapshot.sh

bench-callgrind: $(MODULE)
	@$(DEPS) build run bench valgrind
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) bench/callgrind.sh

# for Debian's nginx only: the revisions are built with their own make
ifneq ($(filter bench-ab,$(MAKECMDGOALS)),)
  ifneq ($(NGINX_SRC)$(SANITIZE),)
    $(error bench-ab compares builds for Debian's nginx: no NGINX_SRC or SANITIZE)
  endif
endif

bench-ab: $(MODULE)
	@$(DEPS) build run load $(if $(filter 1,$(AB_CALLGRIND)),valgrind)
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) NGINX_SRC="$(NGINX_SRC)" \
	    SANITIZE="$(SANITIZE)" AB_A="$(AB_A)" AB_B="$(AB_B)" bench/ab.sh

faults: $(MODULE)
	@$(DEPS) build test run load
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) faults/run.sh

soak: $(MODULE)
	@$(DEPS) build run load
	@TXVAL_MODULE=$(MODULE) NGINX_BIN=$(NGINX_BIN) bench/soak.sh

fuzz:
	@$(DEPS) fuzz
	@fuzz/run.sh

# Postgres data moved out of the tree (scripts/services.sh) goes too
clean:
	@bash -c '. scripts/services.sh; for d in build/test-pg-* build/*/pg; do \
	    [ -L "$$d" ] && txval_pg_remove "$$d"; done; true'
	rm -rf build t/servroot*
