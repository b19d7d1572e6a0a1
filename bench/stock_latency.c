/*
 * Commit-to-platform latency client for bench/platforms.sh: sets the stock
 * of one SKU per transaction at a fixed rate, each time to a count no other
 * change uses, and prints "sku quantity unix_ns" per change, the time taken
 * just before COMMIT is sent (so the figure includes the commit itself).
 * The platform mock's request log says when that count arrived. Connection
 * settings come from the PG* variables.
 *
 *   stock_latency TENANT STORE SKUS RATE_PER_S SECONDS FIRST_QUANTITY
 *     changes SKU-1 .. SKU-SKUS in turn; change i sets FIRST_QUANTITY + i.
 */
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void must(PGresult *r, ExecStatusType want, PGconn *c) {
  if (PQresultStatus(r) != want) {
    fprintf(stderr, "stock_latency: %s", PQerrorMessage(c));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: stock_latency TENANT STORE SKUS RATE_PER_S SECONDS FIRST_QUANTITY\n");
    return 2;
  }
  int skus = atoi(argv[3]);
  double rate = atof(argv[4]);
  int seconds = atoi(argv[5]);
  long long first = atoll(argv[6]);
  PGconn *c = PQconnectdb("");
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "stock_latency: %s", PQerrorMessage(c));
    return 1;
  }
  PGresult *r = PQprepare(
      c, "set", "SELECT ves.set_stock($1::uuid, $2::uuid, 'SKU-' || $3, $4::bigint)", 0, NULL);
  must(r, PGRES_COMMAND_OK, c);
  PQclear(r);
  long long start = now_ns(), interval = (long long)(1e9 / rate);
  int total = (int)(rate * seconds);
  for (int i = 0; i < total; i++) {
    long long due = start + i * interval;
    long long wait = due - now_ns();
    if (wait > 0) {
      struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
      nanosleep(&ts, NULL);
    }
    char sku[16], qty[32];
    snprintf(sku, sizeof sku, "%d", 1 + i % skus);
    snprintf(qty, sizeof qty, "%lld", first + i);
    const char *params[4] = {argv[1], argv[2], sku, qty};
    must(r = PQexec(c, "BEGIN"), PGRES_COMMAND_OK, c);
    PQclear(r);
    r = PQexecPrepared(c, "set", 4, params, NULL, NULL, 0);
    must(r, PGRES_TUPLES_OK, c);
    PQclear(r);
    long long t = now_ns();
    must(r = PQexec(c, "COMMIT"), PGRES_COMMAND_OK, c);
    PQclear(r);
    printf("SKU-%s %s %lld\n", sku, qty, t);
  }
  PQfinish(c);
  return 0;
}
