/*
 * An LD_PRELOAD shim for the tests: host name lookups of two made-up names
 * behave like a slow and a failing DNS server, every other lookup goes to
 * the C library.
 *
 *   slow.pgves.test     answers 127.0.0.1 after PGVES_SLOW_LOOKUP_MS
 *                       milliseconds (default 3000)
 *   missing.pgves.test  answers EAI_NONAME at once
 *   linklocal.pgves.test answers 169.254.169.254 (a cloud metadata address)
 *
 * Built by the TAP tests that use it (test/t/028_ves_postgres.pl):
 *   cc -shared -fPIC -o slow_lookup.so test/shim/slow_lookup.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  static getaddrinfo_fn real;
  if (!real) real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (node && strcmp(node, "missing.pgves.test") == 0) return EAI_NONAME;
  if (node && strcmp(node, "linklocal.pgves.test") == 0) node = "169.254.169.254";
  if (node && strcmp(node, "slow.pgves.test") == 0) {
    const char *ms = getenv("PGVES_SLOW_LOOKUP_MS");
    long wait = ms ? atol(ms) : 3000;
    struct timespec t = {wait / 1000, (wait % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
    node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}
