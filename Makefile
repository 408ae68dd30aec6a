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
USER_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -I bpf -I tools $(DEFS) $(EXTRA_CFLAGS)
USER_LDLIBS := -lbpf

BPF_HEADERS := $(wildcard bpf/*.h)
# A program is its own .c plus, for those listed in LIB_USERS, the policy
# library (tools/libmseg-rules/*.c). Objects go to build/obj/ with -MMD -MP
# dependency files, so a header change rebuilds exactly what includes it.
HELPER_SRCS := $(wildcard tools/*.c exporters/*.c tests/bats/helpers/*.c bench/*.c)
HELPERS := $(addprefix $(BUILD)/,$(notdir $(HELPER_SRCS:.c=)))
LIB_SRCS := $(wildcard tools/libmseg-rules/*.c)
LIB_OBJS := $(addprefix $(BUILD)/obj/libmseg-rules/,$(notdir $(LIB_SRCS:.c=.o)))
LIB_USERS := mseg-ruleset
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
.PHONY: all deps test demo bench install clean lint FORCE

all: $(BUILD)/mseg.bpf.o $(HELPERS)

# Rebuild everything when the capacity or version changes.
$(BUILD)/.config: FORCE
	@mkdir -p $(BUILD)
	@echo '$(DEFS)' | cmp -s - $@ || echo '$(DEFS)' > $@

$(BUILD)/mseg.bpf.o: bpf/mseg.bpf.c $(BPF_HEADERS) $(BUILD)/.config
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

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
	shellcheck -x scripts/* lib/sh/*.sh tests/run tests/demo .ci/run bench/run bench/*.sh tests/bats/*.bats tests/bats/helpers/*.bash

PREFIX ?= /usr/local
MSEG_LIB := $(PREFIX)/lib/mseg
# systemd reads local units from $(PREFIX)/lib/systemd/system (/usr/local/...)
UNIT_DIR ?= $(PREFIX)/lib/systemd/system
UNITS := $(wildcard exporters/systemd/*.service)
install: all
	install -d $(DESTDIR)$(MSEG_LIB)/build $(DESTDIR)$(MSEG_LIB)/lib/sh \
		$(DESTDIR)$(MSEG_LIB)/scripts $(DESTDIR)$(PREFIX)/sbin \
		$(DESTDIR)$(MSEG_LIB)/exporters/grafana $(DESTDIR)$(MSEG_LIB)/exporters/prometheus \
		$(DESTDIR)$(UNIT_DIR)
	install -m 0644 $(BUILD)/mseg.bpf.o $(DESTDIR)$(MSEG_LIB)/build/
	install -m 0755 $(HELPERS) $(DESTDIR)$(MSEG_LIB)/build/
	install -m 0644 lib/sh/*.sh $(DESTDIR)$(MSEG_LIB)/lib/sh/
	install -m 0755 scripts/* $(DESTDIR)$(MSEG_LIB)/scripts/
	ln -sf ../lib/mseg/scripts/mseg $(DESTDIR)$(PREFIX)/sbin/mseg
	install -m 0644 exporters/grafana/*.json $(DESTDIR)$(MSEG_LIB)/exporters/grafana/
	install -m 0644 exporters/prometheus/mseg-rules.yml $(DESTDIR)$(MSEG_LIB)/exporters/prometheus/
	@# The units name /usr/local paths: rewritten for another PREFIX.
	@for u in $(UNITS); do \
		sed 's|/usr/local/|$(PREFIX)/|g' $$u > $(DESTDIR)$(UNIT_DIR)/$${u##*/} && \
		chmod 0644 $(DESTDIR)$(UNIT_DIR)/$${u##*/} || exit 1; \
	done

clean:
	rm -rf $(BUILD)
