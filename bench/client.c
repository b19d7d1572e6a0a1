/*
 * The libpq client behind the batch and read figures of bench/run.sh.
 *
 *   client batch ves|parse|plain|plain-literal CALLS BATCH_SIZE TENANTS SKUS SEED
 *       CALLS transactions of BATCH_SIZE inventory events each: one
 *       ves.append_batch(jsonb) call with the array as a parameter, the same
 *       parameter given to jsonb_array_length (parse: what receiving and
 *       parsing the input costs, nothing written), or one
 *       multi-row INSERT into the baseline table bench.plain_events, either
 *       prepared once with parameters (plain) or sent as literal values
 *       (plain-literal). Call i writes for tenant i mod TENANTS, SKUs drawn at
 *       random from SKUS; the same SEED gives every mode the same rows.
 *
 *   client read ves|direct|plain PAGE PASSES
 *       Reads the whole store PASSES times in pages of PAGE events, passing
 *       back the last position received: ves.read_all (gap-safe), a plain
 *       SELECT on ves.events (no fence, for diagnosis), or the same SELECT on
 *       bench.plain_events.
 *
 *       With BENCH_MEMORY=1 it also samples the backend's anonymous resident
 *       memory (RssAnon in /proc/PID/status, every 2 ms) during the last call
 *       and adds "input_bytes=... rss_growth_kb=... memory_per_input=...":
 *       the growth over what the backend held right before that call, divided
 *       by the size of the JSON (or SQL) text sent. In the ves and parse
 *       modes a call of the same statement with one event comes first, so
 *       that what a session loads once is not counted. Client and server
 *       must share the machine.
 *
 *       With BENCH_INPUT=text the array is sent as a text parameter:
 *       ves.append_batch(text), which reads it an event at a time; parse then
 *       only receives it (its octet_length).
 *
 *       With BENCH_CPU=1 it adds the backend's CPU time over all calls:
 *       "cpu_main_s=..." for its own thread and "cpu_all_s=..." for it and the
 *       threads ves.crypto_threads started (from /proc, so it does not depend
 *       on what else the machine runs; client and server must share it).
 *
 * Connection settings come from the PG* environment variables. Only the
 * round trips are timed: building a request is outside the clock. Prints one
 * line: "events=N seconds=S events_per_s=R". BENCH_EXTRA_COLUMNS and
 * BENCH_EXTRA_VALUES add columns to the baseline rows (see below).
 */
#include <libpq-fe.h>

#include <pthread.h>
#include <unistd.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A growing string buffer. */
typedef struct {
  char *data;
  size_t len, cap;
} Buf;

static void buf_printf(Buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) die("vsnprintf failed");
    if ((size_t)n < b->cap - b->len) {
      b->len += n;
      return;
    }
    b->cap = (b->cap + n + 1) * 2;
    b->data = realloc(b->data, b->cap);
    if (!b->data) die("out of memory");
  }
}

/* xorshift64*: a small deterministic generator so both modes see the same rows. */
static uint64_t rng_state;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}
static long rand_between(long lo, long hi) { return lo + (long)(rng() % (uint64_t)(hi - lo + 1)); }

/* Tenants, stores and payloads have the same shape as in the pgbench scripts. */
static void tenant_uuid(char out[37], int t) {
  snprintf(out, 37, "00000000-0000-4000-8000-%012d", t);
}
static void store_uuid(char out[37], int t) {
  snprintf(out, 37, "00000000-0000-4000-9000-%012d", t);
}
static void payload(Buf *b, long sku) {
  buf_printf(
      b,
      "{\"sku\": \"SKU-%ld\", \"delta\": %ld, \"reason\": \"sale\", \"location\": \"WH-%ld\", "
      "\"order_id\": \"ORD-%ld\"}",
      sku, rand_between(-5, 5), rand_between(1, 4), rand_between(1000000, 9999999));
}

/* RssAnon of a process in kB, or -1. */
static long rss_anon_kb(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

/* utime + stime of /proc/PATH/stat in seconds, or -1. */
static double cpu_seconds(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long utime = 0, stime = 0;
  if (!p ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

typedef struct {
  long pid;
  volatile int stop;
  long peak_kb;
} Sampler;

static void *sample_memory(void *arg) {
  Sampler *s = arg;
  while (!s->stop) {
    long kb = rss_anon_kb(s->pid);
    if (kb > s->peak_kb) s->peak_kb = kb;
    usleep(2000);
  }
  return NULL;
}

static PGconn *connect_or_die(void) {
  PGconn *conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) die("cannot connect: %s", PQerrorMessage(conn));
  return conn;
}

static void check(PGresult *res, ExecStatusType want, const char *what) {
  if (PQresultStatus(res) != want) die("%s failed: %s", what, PQresultErrorMessage(res));
}

/* Columns ves.events has beyond the base row (the signature), as ", a, b",
 * and the constant values the baseline stores in them, as ", x, y": run.sh
 * sets both so the baseline row has the shape and size of a pg_ves row. */
static const char *extra_columns = "", *extra_values = "";

/* The baseline statement: a multi-row INSERT of `size` rows, seven
 * parameters a row, prepared once like a driver's batched insert. */
#define PLAIN_PARAMS 7
static char *plain_insert_sql(int size) {
  Buf b = {0};
  buf_printf(
      &b,
      "INSERT INTO bench.plain_events (position, tenant_id, store_id, entity_type, entity_id, "
      "entity_version, event_id, event_type, payload, metadata, source, recorded_at%s) VALUES ",
      extra_columns);
  for (int i = 0; i < size; ++i) {
    int p = i * PLAIN_PARAMS;
    buf_printf(&b,
               "%s(nextval('bench.plain_position_seq'), $%d::uuid, $%d::uuid, $%d::text, "
               "$%d::text, $%d::bigint, "
               "gen_random_uuid(), $%d::text, $%d::jsonb, '{}', 'manual', now()%s)",
               i ? ", " : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7, extra_values);
  }
  return b.data;
}

static int batch(int argc, char **argv) {
  if (argc != 8)
    die("usage: client batch ves|parse|plain|plain-literal CALLS BATCH_SIZE TENANTS SKUS SEED");
  enum { VES, PLAIN, LITERAL } mode;
  /* "parse": the same JSON parameter as "ves", handed to jsonb_array_length
     instead: what receiving and parsing the input alone costs. */
  int parse_only = strcmp(argv[2], "parse") == 0;
  if (strcmp(argv[2], "ves") == 0 || parse_only)
    mode = VES;
  else if (strcmp(argv[2], "plain") == 0)
    mode = PLAIN;
  else if (strcmp(argv[2], "plain-literal") == 0)
    mode = LITERAL;
  else
    die("batch mode is ves, parse, plain or plain-literal, not %s", argv[2]);
  int calls = atoi(argv[3]), size = atoi(argv[4]), tenants = atoi(argv[5]), skus = atoi(argv[6]);
  rng_state = strtoull(argv[7], NULL, 10) | 1;
  if (calls < 1 || size < 1 || tenants < 1 || skus < 1) die("counts must be positive");
  if (mode == PLAIN && (long)size * PLAIN_PARAMS > 65535)
    die("at most %d rows a call", 65535 / PLAIN_PARAMS);

  /* The baseline keeps entity versions itself, as an application without
   * pg_ves would; pg_ves computes them from ves.streams. */
  long *versions = calloc((size_t)tenants * skus, sizeof(long));
  /* Parameter values of the prepared baseline, one string each. */
  char **values = calloc((size_t)size * PLAIN_PARAMS, sizeof(char *));
  Buf *cells = calloc((size_t)size * PLAIN_PARAMS, sizeof(Buf));
  if (!versions || !values || !cells) die("out of memory");

  PGconn *conn = connect_or_die();
  if (mode == PLAIN) {
    char *sql = plain_insert_sql(size);
    PGresult *prep = PQprepare(conn, "plain_batch", sql, 0, NULL);
    check(prep, PGRES_COMMAND_OK, "PREPARE");
    PQclear(prep);
    free(sql);
  }
  /* BENCH_INPUT=text: the array goes as a text parameter (ves.append_batch
     (text), read an event at a time); parse then only receives it. */
  int as_text = getenv("BENCH_INPUT") && strcmp(getenv("BENCH_INPUT"), "text") == 0;
  char receive_sql[96];
  snprintf(receive_sql, sizeof receive_sql,
           "SELECT CASE WHEN octet_length($1::text) > 0 THEN %d END", size);
  const char *ves_sql = parse_only
                            ? (as_text ? receive_sql : "SELECT jsonb_array_length($1::jsonb)")
                            : (as_text ? "SELECT count(*) FROM ves.append_batch($1::text)"
                                       : "SELECT count(*) FROM ves.append_batch($1::jsonb)");
  int sample = getenv("BENCH_MEMORY") && strcmp(getenv("BENCH_MEMORY"), "1") == 0;
  int keyed = getenv("BENCH_KEYS") && strcmp(getenv("BENCH_KEYS"), "1") == 0;
  int cpu = getenv("BENCH_CPU") && strcmp(getenv("BENCH_CPU"), "1") == 0;
  long backend_pid = 0, rss_before_kb = 0;
  char main_stat[64], all_stat[64];
  double main0 = 0, all0 = 0;
  Sampler sampler = {0, 0, 0};
  pthread_t sampler_thread;
  if (sample || cpu) {
    PGresult *pid = PQexec(conn, "SELECT pg_backend_pid()");
    check(pid, PGRES_TUPLES_OK, "pg_backend_pid()");
    backend_pid = atol(PQgetvalue(pid, 0, 0));
    PQclear(pid);
    snprintf(main_stat, sizeof main_stat, "/proc/%ld/task/%ld/stat", backend_pid, backend_pid);
    snprintf(all_stat, sizeof all_stat, "/proc/%ld/stat", backend_pid);
    main0 = cpu_seconds(main_stat);
    all0 = cpu_seconds(all_stat);
  }
  Buf b = {0};
  double busy = 0;
  for (int call = 0; call < calls; ++call) {
    int t = call % tenants + 1;
    char tenant[37], store[37];
    tenant_uuid(tenant, t);
    store_uuid(store, t);
    b.len = 0;
    if (mode == VES) buf_printf(&b, "[");
    if (mode == LITERAL)
      buf_printf(
          &b,
          "INSERT INTO bench.plain_events (position, tenant_id, store_id, entity_type, entity_id, "
          "entity_version, event_id, event_type, payload, metadata, source, recorded_at%s) VALUES ",
          extra_columns);
    for (int i = 0; i < size; ++i) {
      long sku = rand_between(1, skus);
      long version = ++versions[(size_t)(t - 1) * skus + (sku - 1)];
      if (mode == VES) {
        buf_printf(
            &b,
            "%s{\"tenant_id\": \"%s\", \"store_id\": \"%s\", \"entity_type\": \"InventoryItem\", "
            "\"entity_id\": \"SKU-%ld\", \"event_type\": \"inventory.adjusted\", \"payload\": ",
            i ? ", " : "", tenant, store, sku);
        payload(&b, sku);
        /* BENCH_KEYS=1: every event carries an idempotency key, the same for
           the same SEED, so a second run with it retries the batch. */
        if (keyed) buf_printf(&b, ", \"idempotency_key\": \"bench-%s-%d-%d\"", argv[7], call, i);
        buf_printf(&b, "}");
      } else if (mode == LITERAL) {
        buf_printf(
            &b,
            "%s(nextval('bench.plain_position_seq'), '%s', '%s', 'InventoryItem', 'SKU-%ld', %ld, "
            "gen_random_uuid(), 'inventory.adjusted', '",
            i ? ", " : "", tenant, store, sku, version);
        payload(&b, sku);
        buf_printf(&b, "', '{}', 'manual', now()%s)", extra_values);
      } else {
        Buf *c = &cells[(size_t)i * PLAIN_PARAMS];
        for (int k = 0; k < PLAIN_PARAMS; ++k) c[k].len = 0;
        buf_printf(&c[0], "%s", tenant);
        buf_printf(&c[1], "%s", store);
        buf_printf(&c[2], "InventoryItem");
        buf_printf(&c[3], "SKU-%ld", sku);
        buf_printf(&c[4], "%ld", version);
        buf_printf(&c[5], "inventory.adjusted");
        payload(&c[6], sku);
        for (int k = 0; k < PLAIN_PARAMS; ++k) values[(size_t)i * PLAIN_PARAMS + k] = c[k].data;
      }
    }
    if (mode == VES) buf_printf(&b, "]");
    const char *params[1] = {b.data};
    int sampled = sample && call == calls - 1;
    if (sampled && mode == VES) {
      /* The same statement with one event first, on the same connection:
         what a session's first call loads (catalog caches, plans; about 7 MB
         whatever the batch) is then not counted as the batch's. */
      char one[512];
      snprintf(one, sizeof one,
               "[{\"tenant_id\": \"%s\", \"store_id\": \"%s\", \"entity_type\": "
               "\"InventoryItem\", \"entity_id\": \"SKU-1\", \"event_type\": "
               "\"inventory.adjusted\", \"payload\": {}}]",
               tenant, store);
      const char *warm[1] = {one};
      PGresult *w = PQexecParams(conn, ves_sql, 1, NULL, warm, NULL, NULL, 0);
      check(w, PGRES_TUPLES_OK, "the warm-up call");
      PQclear(w);
    }
    if (sampled) {
      rss_before_kb = rss_anon_kb(backend_pid);
      sampler.pid = backend_pid;
      sampler.peak_kb = rss_before_kb;
      if (pthread_create(&sampler_thread, NULL, sample_memory, &sampler) != 0)
        die("cannot start the memory sampler");
    }
    double start = now_s();
    PGresult *res;
    if (mode == VES)
      res = PQexecParams(conn, ves_sql, 1, NULL, params, NULL, NULL, 0);
    else if (mode == LITERAL)
      res = PQexec(conn, b.data);
    else
      res = PQexecPrepared(conn, "plain_batch", size * PLAIN_PARAMS, (const char *const *)values,
                           NULL, NULL, 0);
    busy += now_s() - start;
    if (sampled) {
      sampler.stop = 1;
      pthread_join(sampler_thread, NULL);
    }
    check(res, mode == VES ? PGRES_TUPLES_OK : PGRES_COMMAND_OK,
          mode == VES ? "ves.append_batch" : "INSERT");
    long done = atol(mode == VES ? PQgetvalue(res, 0, 0) : PQcmdTuples(res));
    if (done != size) die("call %d wrote %ld events, not %d", call + 1, done, size);
    PQclear(res);
  }
  long events = (long)calls * size;
  printf("events=%ld seconds=%.3f events_per_s=%.0f", events, busy, events / busy);
  if (cpu)
    printf(" cpu_main_s=%.2f cpu_all_s=%.2f", cpu_seconds(main_stat) - main0,
           cpu_seconds(all_stat) - all0);
  if (sample) {
    long input = mode == PLAIN ? 0 : (long)b.len;
    if (mode == PLAIN)
      for (size_t k = 0; k < (size_t)size * PLAIN_PARAMS; ++k) input += (long)cells[k].len;
    long growth = sampler.peak_kb - rss_before_kb;
    printf(" input_bytes=%ld rss_growth_kb=%ld memory_per_input=%.2f", input, growth,
           input > 0 ? growth * 1024.0 / input : 0);
  }
  printf("\n");
  PQfinish(conn);
  for (size_t k = 0; k < (size_t)size * PLAIN_PARAMS; ++k) free(cells[k].data);
  free(cells);
  free(values);
  free(b.data);
  free(versions);
  return 0;
}

static int read_pages(int argc, char **argv) {
  if (argc != 5) die("usage: client read ves|direct|plain PAGE PASSES");
  const char *sql;
  if (strcmp(argv[2], "ves") == 0)
    sql = "SELECT * FROM ves.read_all($1, $2)";
  else if (strcmp(argv[2], "direct") == 0)
    sql = "SELECT * FROM ves.events WHERE position > $1 ORDER BY position LIMIT $2";
  else if (strcmp(argv[2], "plain") == 0)
    sql = "SELECT * FROM bench.plain_events WHERE position > $1 ORDER BY position LIMIT $2";
  else
    die("read mode is ves, direct or plain, not %s", argv[2]);
  int page = atoi(argv[3]), passes = atoi(argv[4]);
  if (page < 1 || passes < 1) die("counts must be positive");

  PGconn *conn = connect_or_die();
  PGresult *prep = PQprepare(conn, "page", sql, 0, NULL);
  check(prep, PGRES_COMMAND_OK, "PREPARE");
  PQclear(prep);

  char after[32], limit[32];
  snprintf(limit, sizeof limit, "%d", page);
  long events = 0, first_pass = 0;
  size_t bytes = 0;
  double start = now_s();
  for (int pass = 0; pass < passes; ++pass) {
    long last = 0, before = events;
    for (;;) {
      snprintf(after, sizeof after, "%ld", last);
      const char *params[2] = {after, limit};
      PGresult *res = PQexecPrepared(conn, "page", 2, params, NULL, NULL, 0);
      check(res, PGRES_TUPLES_OK, argv[2]);
      int n = PQntuples(res);
      if (n == 0) {
        PQclear(res);
        break;
      }
      /* Look at every value, as a consumer would. */
      int fields = PQnfields(res);
      for (int r = 0; r < n; ++r)
        for (int f = 0; f < fields; ++f) bytes += (size_t)PQgetlength(res, r, f);
      long next = atol(PQgetvalue(res, n - 1, PQfnumber(res, "position")));
      if (next <= last) die("positions went backwards: %ld after %ld", next, last);
      last = next;
      events += n;
      PQclear(res);
    }
    if (pass == 0)
      first_pass = events;
    else if (events - before != first_pass)
      die("pass %d read %ld events, the first read %ld", pass + 1, events - before, first_pass);
  }
  double seconds = now_s() - start;
  printf("events=%ld seconds=%.3f events_per_s=%.0f bytes=%zu\n", events, seconds, events / seconds,
         bytes);
  PQfinish(conn);
  return 0;
}

int main(int argc, char **argv) {
  if (getenv("BENCH_EXTRA_COLUMNS")) extra_columns = getenv("BENCH_EXTRA_COLUMNS");
  if (getenv("BENCH_EXTRA_VALUES")) extra_values = getenv("BENCH_EXTRA_VALUES");
  if (argc >= 2 && strcmp(argv[1], "batch") == 0) return batch(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "read") == 0) return read_pages(argc, argv);
  die("usage: client batch ... | client read ...");
  return 1;
}
