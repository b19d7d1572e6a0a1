# Builds an upgrade script to the current version from its source in
# src/sql/upgrade/A--B.sql, taking object definitions from the current install
# script (-v install=pg_ves--B.sql) instead of copying them by hand:
#   -- @include FILE              the whole file (objects new in B)
#   -- @replace function ves.NAME  its CREATE FUNCTION as CREATE OR REPLACE
#   -- @replace view ves.NAME      its CREATE VIEW as CREATE OR REPLACE
#   -- @create function ves.NAME   its CREATE FUNCTION as is (after a DROP)
#   -- @create table ves.NAME      its CREATE TABLE as is (a table new in B)
# A name matches every overload of it. Statements end at a line ending in ";"
# outside dollar quotes.

# Copies the statements of the install script that start with `prefix`.
function copy_statements(prefix, replace,    line, n, inside, tag, rest, tok, copying, found) {
  found = 0
  copying = 0
  inside = 0
  while ((getline line < install) > 0) {
    if (!copying && index(line, prefix) == 1) {
      copying = 1
      found = 1
      inside = 0
      if (replace) sub(/^CREATE (FUNCTION|VIEW)/, "CREATE OR REPLACE &", line)
      sub(/OR REPLACE CREATE /, "OR REPLACE ", line)
    }
    if (!copying) continue
    print line
    rest = line
    while (match(rest, /\$[A-Za-z_]*\$/)) {
      tok = substr(rest, RSTART, RLENGTH)
      if (!inside) { inside = 1; tag = tok } else if (tok == tag) inside = 0
      rest = substr(rest, RSTART + RLENGTH)
    }
    if (!inside && line ~ /;[ \t]*$/) copying = 0
  }
  close(install)
  if (!found) { print "build.awk: no " prefix " in " install > "/dev/stderr"; exit 1 }
}

/^-- @include / {
  file = $3
  while ((getline line < file) > 0) print line
  close(file)
  next
}
/^-- @replace function / { copy_statements("CREATE FUNCTION " $4 "(", 1); next }
/^-- @replace view /     { copy_statements("CREATE VIEW " $4 " ", 1); next }
/^-- @create function /  { copy_statements("CREATE FUNCTION " $4 "(", 0); next }
/^-- @create table /     { copy_statements("CREATE TABLE " $4 " ", 0); next }
{ print }
