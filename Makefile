# pg_ves — PGXS build. This file is the source of truth for the extension;
# CMakeLists.txt only builds src/core and its unit tests.
EXTENSION    = pg_ves
EXTVERSION   = 0.3.0
MODULE_big   = pg_ves

CORE_SRCS    = $(sort $(wildcard src/core/*/*.cpp))
PG_SRCS      = $(sort $(wildcard src/pg/*/*.cpp))
OBJS         = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

SQL_PARTS    = $(sort $(wildcard src/sql/*.sql))
# Released versions' install scripts are kept as they shipped
# (src/sql/upgrade/pg_ves--A.sql); the upgrade to this version is built from
# src/sql/upgrade/A--B.sql by build.awk, which takes object definitions from
# this version's install script. When a new version starts, commit the built
# upgrade script as src/sql/upgrade/pg_ves--A--B.sql and drop its source.
# test/t/031_upgrade.pl checks that every path ends in a fresh install's schema.
UPGRADES     = $(patsubst src/sql/upgrade/%.sql,$(EXTENSION)--%.sql,$(wildcard src/sql/upgrade/[0-9]*--*.sql))
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql $(UPGRADES)
DATA         = $(sort $(wildcard src/sql/upgrade/$(EXTENSION)--*.sql))

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CPPFLAGS  = -Isrc
PG_CXXFLAGS  = -std=c++17 -pthread -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register
SHLIB_LINK   = -lsodium -lcurl -lstdc++ -pthread
# ves_postgres destinations reach another pg_ves over libpq (src/pg/sync/remote_pg.cpp).
SHLIB_LINK  += -L$(libdir) -lpq

# pg_ves_mcp (src/mcp) is a client program, not part of pg_ves.so; see its
# rules below.
EXTRA_CLEAN  = pg_ves_mcp $(wildcard src/mcp/*.o)

# The server's JIT bitcode is for C; pg_ves is C++ and gains nothing from it.
override with_llvm = no

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS compiles .cpp with CXXFLAGS from the server build, which carry C-only
# warnings; keep ours and drop theirs.
override CXXFLAGS := $(filter-out -Wmissing-prototypes -Wdeclaration-after-statement,$(CXXFLAGS))

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

$(UPGRADES): $(EXTENSION)--%.sql: src/sql/upgrade/%.sql $(EXTENSION)--$(EXTVERSION).sql src/sql/upgrade/build.awk $(SQL_PARTS)
	awk -v install=$(EXTENSION)--$(EXTVERSION).sql -f src/sql/upgrade/build.awk $< > $@

$(OBJS): $(wildcard src/core/*/*.hpp) $(wildcard src/pg/*/*.hpp)
src/pg/sync/remote_pg.o: override CPPFLAGS += -I$(includedir)

# pg_ves_mcp: the MCP server for the sync verbs, linked with libpq and the
# core's JSON code, installed next to the server's programs (pg_config --bindir).
MCP_SRCS     = $(sort $(wildcard src/mcp/*.cpp))
MCP_OBJS     = $(MCP_SRCS:.cpp=.o) src/core/json/json.o src/core/json/canonical_json.o src/core/json/utf8.o
$(MCP_SRCS:.cpp=.o): override CPPFLAGS += -I$(includedir) -DPGVES_VERSION='"$(EXTVERSION)"'
$(MCP_SRCS:.cpp=.o): $(wildcard src/mcp/*.hpp) $(wildcard src/core/json/*.hpp)
pg_ves_mcp: $(MCP_OBJS)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) -o $@ $(MCP_OBJS) -L$(libdir) -lpq
all: pg_ves_mcp
install: install-mcp
uninstall: uninstall-mcp
.PHONY: install-mcp uninstall-mcp
install-mcp: pg_ves_mcp
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) pg_ves_mcp '$(DESTDIR)$(bindir)/pg_ves_mcp'
uninstall-mcp:
	rm -f '$(DESTDIR)$(bindir)/pg_ves_mcp'

.PHONY: format format-check
# One style for every C and C++ file (.clang-format); the test command runs
# format-check and fails on a file clang-format would change.
FORMATTED    = $(sort $(wildcard src/*/*/*.[ch]pp src/mcp/*.[ch]pp test/unit/*.[ch]pp test/fuzz/*.cpp bench/*.c bench/*.cpp))
format:
	@clang-format -i $(FORMATTED)
format-check:
	@clang-format --dry-run --Werror $(FORMATTED)
