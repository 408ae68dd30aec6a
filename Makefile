# mseg: `make` builds build/mseg.bpf.o and every C helper into build/.
# `make MSEG_MAX_SESSIONS=N` sets the session table capacity everywhere.

MSEG_MAX_SESSIONS ?= 262144
MSEG_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo 0.1)

BUILD := build
CLANG ?= clang
CC ?= cc
BPFTOOL ?= bpftool

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
DEFS := -DMSEG_MAX_SESSIONS=$(MSEG_MAX_SESSIONS) -DMSEG_VERSION='"$(MSEG_VERSION)"'

BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -Wall -Werror -D__TARGET_ARCH_$(ARCH) \
	-I bpf -I /usr/include/$(shell uname -m)-linux-gnu $(DEFS)
USER_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -I bpf -I tools -I $(BUILD) $(DEFS) $(EXTRA_CFLAGS)
USER_LDLIBS := -lbpf

BPF_HEADERS := $(wildcard bpf/*.h)
# A program is its own .c plus, for those listed in LIB_USERS, the policy
# library (tools/libmseg-rules/*.c). Objects go to build/obj/ with -MMD -MP
# dependency files, so a header change rebuilds exactly what includes it.
HELPER_SRCS := $(wildcard tools/*.c exporters/*.c tests/bats/helpers/*.c bench/*.c)
HELPERS := $(addprefix $(BUILD)/,$(notdir $(HELPER_SRCS:.c=)))
LIB_SRCS := $(wildcard tools/libmseg-rules/*.c)
LIB_OBJS := $(addprefix $(BUILD)/obj/libmseg-rules/,$(notdir $(LIB_SRCS:.c=.o)))
LIB_USERS := mseg-ruleset mseg-flows
OBJ_DIR := $(BUILD)/obj

vpath %.c tools exporters tests/bats/helpers bench

# V=1 prints the full commands.
ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

.DELETE_ON_ERROR:
.PHONY: all deps test demo bench install uninstall man deb clean lint FORCE

all: $(BUILD)/mseg.bpf.o $(HELPERS)

# Rebuild everything when the capacity or version changes.
$(BUILD)/.config: FORCE
	@mkdir -p $(BUILD)
	@echo '$(DEFS)' | cmp -s - $@ || echo '$(DEFS)' > $@

$(BUILD)/mseg.bpf.o: bpf/mseg.bpf.c $(BPF_HEADERS) $(BUILD)/.config
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# mseg-gc's sweep program, embedded in build/mseg-gc as a libbpf skeleton.
$(BUILD)/mseg_gc.bpf.o: bpf/mseg_gc.bpf.c $(BPF_HEADERS) $(BUILD)/.config
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/mseg_gc.skel.h: $(BUILD)/mseg_gc.bpf.o
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name mseg_gc_bpf > $@.tmp && mv $@.tmp $@

$(OBJ_DIR)/mseg-gc.o: $(BUILD)/mseg_gc.skel.h

$(OBJ_DIR)/libmseg-rules/%.o: tools/libmseg-rules/%.c $(BUILD)/.config
	@mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -MMD -MP -c $< -o $@

$(OBJ_DIR)/%.o: %.c $(BUILD)/.config
	@mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -MMD -MP -c $< -o $@

$(addprefix $(BUILD)/,$(LIB_USERS)): $(BUILD)/%: $(OBJ_DIR)/%.o $(LIB_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ $(USER_LDLIBS)

$(filter-out $(addprefix $(BUILD)/,$(LIB_USERS)),$(HELPERS)): $(BUILD)/%: $(OBJ_DIR)/%.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ $(USER_LDLIBS)

-include $(wildcard $(OBJ_DIR)/*.d $(OBJ_DIR)/libmseg-rules/*.d)

deps:
	./scripts/mseg-deps

# test and demo work on a fresh machine: install what is missing, then build.
test: deps
	$(MAKE) all
	./tests/run

demo: deps
	$(MAKE) all
	./tests/demo

bench: deps
	$(MAKE) all
	./bench/run

lint:
	shellcheck -x scripts/* lib/sh/*.sh completion/mseg tests/run tests/demo .ci/run bench/run bench/*.sh tests/bats/*.bats tests/bats/helpers/*.bash \
		tests/bats/helpers/*.sh deploy/debian/build-deb deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm \
		deploy/kubernetes/mseg-watch

PREFIX ?= /usr/local
MSEG_LIB := $(PREFIX)/lib/mseg
# systemd reads local units from $(PREFIX)/lib/systemd/system (/usr/local/...)
UNIT_DIR ?= $(PREFIX)/lib/systemd/system
MAN_DIR ?= $(PREFIX)/share/man/man8
COMPLETION_DIR ?= $(PREFIX)/share/bash-completion/completions
UNITS := $(wildcard exporters/systemd/*.service)
# What an operator runs, and what it runs: not the test and bench tools
# (mseg-pkt, mseg-testrun, mseg-fill) nor the apt installer (mseg-deps).
OPERATOR_TOOLS := $(addprefix $(BUILD)/,mseg-abi mseg-gc mseg-log mseg-eventd \
	mseg-sessions mseg-flows mseg-textfile mseg-ruleset)
OPERATOR_SCRIPTS := $(filter-out scripts/mseg-deps,$(wildcard scripts/mseg*))

# Man pages: help2man over each command's own --help and --version, so the
# pages say exactly what the commands do (one source). `mseg CMD` pages are
# mseg-CMD.8, as git's are; the paths in them are the installed ones.
MAN_COMMANDS := attach detach status default config sessions stats gc monitor \
	log flows graph staged learn segment rule cidr explain failsafe ip-range save apply confirm boot
MAN_PAGES := $(BUILD)/man/mseg.8 $(MAN_COMMANDS:%=$(BUILD)/man/mseg-%.8) \
	$(BUILD)/man/mseg-eventd.8 $(BUILD)/man/mseg-textfile.8
MAN_ENV := MSEG_OBJ=$(MSEG_LIB)/build/mseg.bpf.o TC_BPF_MNT=
HELP2MAN := help2man --no-info --section=8 --source=mseg \
	--version-string="$(MSEG_VERSION)"

man: $(MAN_PAGES)

# A page's one-line name is the command's line in `mseg --help`.
MAN_NAME = $$(env $(MAN_ENV) ./scripts/mseg --help | \
	awk -v c=$(1) '$$1 == c { sub(/^ *[^ ]+( [^ ]+)*  +/, ""); print; exit }')

$(BUILD)/man/mseg.8: all $(wildcard scripts/mseg* lib/sh/*.sh) docs/man.txt
	@mkdir -p $(@D)
	env $(MAN_ENV) $(HELP2MAN) --name="the microsegmentation firewall on eBPF and tc" \
		--include=docs/man.txt --output=$@ ./scripts/mseg

$(BUILD)/man/mseg-%.8: all $(wildcard scripts/mseg* lib/sh/*.sh) docs/man.txt
	@mkdir -p $(@D)/bin
	printf '#!/bin/sh\nexec "%s" %s "$$@"\n' "$(CURDIR)/scripts/mseg" $* > $(@D)/bin/mseg-$*
	chmod 0755 $(@D)/bin/mseg-$*
	env $(MAN_ENV) $(HELP2MAN) --name="$(call MAN_NAME,$*)" \
		--include=docs/man.txt --output=$@ $(@D)/bin/mseg-$*

$(BUILD)/man/mseg-eventd.8: all docs/man.txt
	@mkdir -p $(@D)
	$(HELP2MAN) --name="drain mseg's event ring into the event log" \
		--include=docs/man.txt --output=$@ $(BUILD)/mseg-eventd

$(BUILD)/man/mseg-textfile.8: all docs/man.txt
	@mkdir -p $(@D)
	$(HELP2MAN) --name="mseg's metrics for node_exporter's textfile collector" \
		--include=docs/man.txt --output=$@ $(BUILD)/mseg-textfile

install: all man
	install -d $(DESTDIR)$(MSEG_LIB)/build $(DESTDIR)$(MSEG_LIB)/lib/sh \
		$(DESTDIR)$(MSEG_LIB)/scripts $(DESTDIR)$(PREFIX)/sbin \
		$(DESTDIR)$(MSEG_LIB)/exporters/grafana $(DESTDIR)$(MSEG_LIB)/exporters/prometheus \
		$(DESTDIR)$(UNIT_DIR) $(DESTDIR)$(MAN_DIR) $(DESTDIR)$(COMPLETION_DIR)
	install -m 0644 $(BUILD)/mseg.bpf.o $(DESTDIR)$(MSEG_LIB)/build/
	install -m 0755 $(OPERATOR_TOOLS) $(DESTDIR)$(MSEG_LIB)/build/
	install -m 0644 lib/sh/*.sh $(DESTDIR)$(MSEG_LIB)/lib/sh/
	install -m 0755 $(OPERATOR_SCRIPTS) $(DESTDIR)$(MSEG_LIB)/scripts/
	ln -sf ../lib/mseg/scripts/mseg $(DESTDIR)$(PREFIX)/sbin/mseg
	install -m 0644 exporters/grafana/*.json $(DESTDIR)$(MSEG_LIB)/exporters/grafana/
	install -m 0644 exporters/prometheus/mseg-rules.yml $(DESTDIR)$(MSEG_LIB)/exporters/prometheus/
	install -m 0644 $(MAN_PAGES) $(DESTDIR)$(MAN_DIR)/
	install -m 0644 completion/mseg $(DESTDIR)$(COMPLETION_DIR)/mseg
	@# The units name /usr/local paths: rewritten for another PREFIX.
	@for u in $(UNITS); do \
		sed 's|/usr/local/|$(PREFIX)/|g' $$u > $(DESTDIR)$(UNIT_DIR)/$${u##*/} && \
		chmod 0644 $(DESTDIR)$(UNIT_DIR)/$${u##*/} || exit 1; \
	done

# Everything install put there, and nothing else (the event log in
# /var/log/mseg and the locks in /run/mseg are the operator's).
uninstall:
	rm -rf $(DESTDIR)$(MSEG_LIB)
	rm -f $(DESTDIR)$(PREFIX)/sbin/mseg $(DESTDIR)$(COMPLETION_DIR)/mseg
	rm -f $(addprefix $(DESTDIR)$(MAN_DIR)/,$(notdir $(MAN_PAGES)))
	rm -f $(addprefix $(DESTDIR)$(UNIT_DIR)/,$(notdir $(UNITS)))

# make deb: build/mseg_$(DEB_VERSION)_amd64.deb from `make install` into a
# staging root (PREFIX=/usr, units where Debian keeps them), so the package
# follows the install list. The helpers are rebuilt apart, in
# $(BUILD)/deb/build, with Debian's hardening flags.
DEB_VERSION ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//;s/-/+git/;s/-/./' | grep . || \
	echo "0.1+git$$(git rev-list --count HEAD 2>/dev/null || echo 0).$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$$(git diff --quiet HEAD 2>/dev/null || echo .dirty)")
DEB_ROOT := $(BUILD)/deb/root
DEB_FLAGS = $(shell DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS) $(shell DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS) $(shell DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
deb:
	rm -rf $(BUILD)/deb
	$(MAKE) -s BUILD=$(BUILD)/deb/build EXTRA_CFLAGS='$(DEB_FLAGS)' MSEG_VERSION=$(DEB_VERSION) \
		install DESTDIR=$(abspath $(DEB_ROOT)) PREFIX=/usr UNIT_DIR=/lib/systemd/system
	deploy/debian/build-deb $(DEB_ROOT) $(DEB_VERSION) $(BUILD)

clean:
	rm -rf $(BUILD)
