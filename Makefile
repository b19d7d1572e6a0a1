# pg_ves — PGXS build. This file is the source of truth for the extension;
# CMakeLists.txt only builds src/core and its unit tests.
EXTENSION    = pg_ves
EXTVERSION   = 0.1.0
MODULE_big   = pg_ves

CORE_SRCS    = $(sort $(wildcard src/core/*.cpp))
PG_SRCS      = $(sort $(wildcard src/pg/*.cpp))
OBJS         = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

SQL_PARTS    = $(sort $(wildcard src/sql/*.sql))
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql
DATA         = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*--*.sql))

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CPPFLAGS  = -Isrc
PG_CXXFLAGS  = -std=c++17 -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register
SHLIB_LINK   = -lsodium -lcurl -lstdc++

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

$(OBJS): $(wildcard src/core/*.hpp) $(wildcard src/pg/*.hpp)

.PHONY: format
format:
	clang-format -i src/core/*.[ch]pp src/pg/*.[ch]pp test/unit/*.cpp
