/*
 * Commit-to-delivery latency client for bench/outbox.sh: appends one event
 * per transaction at a fixed rate and prints "event_id unix_ns" per event,
 * the time taken just before COMMIT is sent (so the figure includes the
 * commit itself). Connection settings come from the PG* variables.
 *
 *   latency RATE_PER_S SECONDS
 */
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void must(PGresult *r, ExecStatusType want, PGconn *c) {
  if (PQresultStatus(r) != want) {
    fprintf(stderr, "latency: %s", PQerrorMessage(c));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: latency RATE_PER_S SECONDS\n");
    return 2;
  }
  double rate = atof(argv[1]);
  int seconds = atoi(argv[2]);
  PGconn *c = PQconnectdb("");
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "latency: %s", PQerrorMessage(c));
    return 1;
  }
  PGresult *r = PQprepare(c, "append",
                          "SELECT event_id FROM ves.append('00000000-0000-0000-0000-0000000000b1', "
                          "'00000000-0000-0000-0000-0000000000b2', 'InventoryItem', 'SKU-' || $1, "
                          "'inventory.adjusted', jsonb_build_object('delta', $1::int))",
                          0, NULL);
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
    char sku[16];
    snprintf(sku, sizeof sku, "%d", i % 1000);
    const char *params[1] = {sku};
    must(r = PQexec(c, "BEGIN"), PGRES_COMMAND_OK, c);
    PQclear(r);
    r = PQexecPrepared(c, "append", 1, params, NULL, NULL, 0);
    must(r, PGRES_TUPLES_OK, c);
    char id[64];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    long long t = now_ns();
    must(r = PQexec(c, "COMMIT"), PGRES_COMMAND_OK, c);
    PQclear(r);
    printf("%s %lld\n", id, t);
  }
  PQfinish(c);
  return 0;
}
