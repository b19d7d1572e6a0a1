/*
 * A minimal HTTP/1.1 sink for the outbox benchmarks: keep-alive, epoll, one
 * thread, answers every request as soon as its body has arrived, and
 * remembers when each webhook-id / Idempotency-Key arrived.
 *
 *   sink PORT_FILE DUMP_FILE
 *     Listens on 127.0.0.1, a free port, written to PORT_FILE; answers 200.
 *     GET /count answers the number of requests received so far.
 *     On SIGTERM writes "id unix_ns" per request to DUMP_FILE and exits.
 *
 *   sink PORT_FILE DUMP_FILE tiktok APP_KEY APP_SECRET ACCESS_TOKEN REFRESH_TOKEN
 *     TikTok Shop's token refresh (GET /api/v2/token/refresh, the app and the
 *     refresh token checked) and inventory update for bench/platforms.sh:
 *     checks the x-tts-access-token header (ACCESS_TOKEN or the one last
 *     granted) and the request's sign (HMAC-SHA256 keyed by the app secret,
 *     recomputed here), keeps each SKU's quantity and answers {"code":0,...};
 *     a wrong token or sign is answered with code 106001 and counted.
 *
 *   sink PORT_FILE DUMP_FILE amazon CLIENT_ID CLIENT_SECRET REFRESH_TOKEN
 *     Amazon's Login with Amazon token grant (POST /auth/o2/token, the three
 *     values checked) and patchListingsItem: checks x-amz-access-token
 *     against the token it granted, keeps each SKU's quantity and answers
 *     status ACCEPTED; a wrong token is answered 403 and counted.
 *
 *   In the platform modes GET /quantities writes "key quantity" per SKU to
 *   DUMP_FILE.quantities (keys as test/mock/platforms.py's /_quantities
 *   names them) and answers the number of requests refused for their
 *   credentials.
 *
 * Python's servers cannot take 10,000 requests per second on two cores that
 * the database shares; this one costs the machine little, so the figure is
 * the worker's. The platform modes check what pg_ves signs and sends for a
 * stock update and nothing else: test/mock/platforms.py is the mock that
 * checks every rule of each API for the tests.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 4096
#define BUF 65536

struct conn {
  int fd;
  size_t len;
  char buf[BUF];
};
struct rec {
  char id[64];
  long long ns;
};

static struct conn *conns[MAX_CONN];
static struct rec *recs;
static size_t nrecs, caprecs;
static volatile sig_atomic_t stop;

static void on_term(int s) {
  (void)s;
  stop = 1;
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *header(const char *head, size_t head_len, const char *name, size_t *vlen) {
  size_t n = strlen(name);
  for (const char *p = head; p < head + head_len;) {
    const char *eol = memmem(p, head + head_len - p, "\r\n", 2);
    if (!eol) break;
    if ((size_t)(eol - p) > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (v < eol && *v == ' ') v++;
      *vlen = eol - v;
      return v;
    }
    p = eol + 2;
  }
  return NULL;
}

static void respond(int fd, int status, const char *headers, const char *body) {
  char out[1024];
  int n = snprintf(out, sizeof out,
                   "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: %s\r\n%s\r\n%s", status,
                   status == 200   ? "OK"
                   : status == 403 ? "Forbidden"
                                   : "Bad Request",
                   strlen(body), body[0] == '{' ? "application/json" : "text/plain",
                   headers ? headers : "", body);
  if (n >= (int)sizeof out) n = sizeof out - 1;
  ssize_t w = write(fd, out, n);
  (void)w;
}
static void reply(int fd, const char *body) { respond(fd, 200, NULL, body); }

/* --- platform modes --- */
enum { WEBHOOK, TIKTOK, AMAZON } mode = WEBHOOK;
static char **opt;       /* the mode's arguments */
static char granted[64]; /* the access token last granted */
static unsigned long refused, grants, seq, handled;
static const char *dump_path;

/* Each SKU's quantity: open addressing, keys up to 127 bytes. */
#define QCAP (1 << 17)
struct qty {
  char key[128];
  long long n;
};
static struct qty *qtab;
static size_t qcount;
static void set_qty(const char *key, size_t len, long long n) {
  if (len >= sizeof qtab->key || qcount >= QCAP / 2) return;
  unsigned long h = 1469598103934665603UL;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211UL;
  for (size_t i = h & (QCAP - 1);; i = (i + 1) & (QCAP - 1)) {
    struct qty *q = &qtab[i];
    if (!q->key[0]) {
      memcpy(q->key, key, len);
      q->key[len] = 0;
      qcount++;
    } else if (strlen(q->key) != len || memcmp(q->key, key, len) != 0) {
      continue;
    }
    q->n = n;
    return;
  }
}
static void dump_quantities(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s.quantities", dump_path);
  FILE *f = fopen(path, "w");
  if (!f) return;
  for (size_t i = 0; i < QCAP; i++)
    if (qtab[i].key[0]) fprintf(f, "%s %lld\n", qtab[i].key, qtab[i].n);
  fclose(f);
}

/* Percent-decodes [s, s + len) into out (NUL-terminated); returns its length. */
static size_t decode(const char *s, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 1 < cap; i++) {
    if (s[i] == '%' && i + 2 < len) {
      char hex[3] = {s[i + 1], s[i + 2], 0};
      out[o++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  out[o] = 0;
  return o;
}
/* The value of form or query field `name` in [s, s + len), decoded; 0 if absent. */
static int field(const char *s, size_t len, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = s; p < s + len;) {
    const char *amp = memchr(p, '&', s + len - p);
    const char *end = amp ? amp : s + len;
    if ((size_t)(end - p) > n && strncmp(p, name, n) == 0 && p[n] == '=') {
      decode(p + n + 1, end - p - n - 1, out, cap);
      return 1;
    }
    p = end + 1;
  }
  return 0;
}
/* Whether the form or query fields names[i] of [s, s + len) hold wants[i]. */
static int fields_are(const char *s, size_t len, const char *const names[],
                      const char *const wants[], int n) {
  char v[256];
  for (int i = 0; i < n; i++)
    if (!field(s, len, names[i], v, sizeof v) || strcmp(v, wants[i]) != 0) return 0;
  return 1;
}
/* Answers a request whose credentials are wrong, and counts it. */
static void refuse(int fd, int status, const char *body) {
  refused++;
  respond(fd, status, NULL, body);
}
/* A new access token into `granted`, as the platform's grant names it. */
static const char *grant(const char *prefix) {
  snprintf(granted, sizeof granted, "%s%lu", prefix, ++grants);
  return granted;
}

/* The integer after the next "quantity": at or after p, before end. */
static const char *quantity_after(const char *p, const char *end, long long *n) {
  const char *q = memmem(p, end - p, "\"quantity\":", 11);
  if (q) *n = strtoll(q + 11, NULL, 10);
  return q;
}

struct param {
  char name[64], value[256];
};
static int by_name(const void *a, const void *b) {
  return strcmp(((const struct param *)a)->name, ((const struct param *)b)->name);
}
/* POST /product/202309/products/{id}/inventory/update?...: checks the token
   and the sign, keeps "product/sku@warehouse" quantities. */
static void tiktok(int fd, const char *target, size_t tlen, const char *head, size_t head_len,
                   const char *body, size_t body_len) {
  const char *qm = memchr(target, '?', tlen);
  size_t plen = qm ? (size_t)(qm - target) : tlen, vlen = 0;
  struct param ps[16];
  int np = 0;
  char sign[129] = "";
  for (const char *p = qm ? qm + 1 : target + tlen; p < target + tlen && np < 16;) {
    const char *amp = memchr(p, '&', target + tlen - p);
    const char *end = amp ? amp : target + tlen;
    const char *eq = memchr(p, '=', end - p);
    if (eq) {
      decode(p, eq - p, ps[np].name, sizeof ps[np].name);
      decode(eq + 1, end - eq - 1, ps[np].value, sizeof ps[np].value);
      if (strcmp(ps[np].name, "sign") == 0)
        snprintf(sign, sizeof sign, "%s", ps[np].value);
      else if (strcmp(ps[np].name, "access_token") != 0)
        np++;
    }
    p = end + 1;
  }
  static const char refresh_path[] = "/api/v2/token/refresh";
  if (plen == sizeof refresh_path - 1 && memcmp(target, refresh_path, plen) == 0) {
    static const char *const names[] = {"app_key", "app_secret", "refresh_token", "grant_type"};
    const char *const wants[] = {opt[0], opt[1], opt[3], "refresh_token"};
    const char *q = qm ? qm + 1 : target + tlen;
    char out[512];
    if (!fields_are(q, target + tlen - q, names, wants, 4)) {
      refuse(fd, 401,
             "{\"code\":105001,\"message\":\"Invalid refresh token or app\",\"request_id\":"
             "\"bench\"}");
      return;
    }
    snprintf(out, sizeof out,
             "{\"code\":0,\"data\":{\"access_token\":\"%s\",\"access_token_expire_in\":%lld,"
             "\"refresh_token\":\"%s\",\"refresh_token_expire_in\":%lld},\"message\":\"success\","
             "\"request_id\":\"bench\"}",
             grant("tts-bench-access-"), (long long)time(NULL) + 7 * 86400, opt[3],
             (long long)time(NULL) + 365 * 86400);
    reply(fd, out);
    return;
  }
  qsort(ps, np, sizeof *ps, by_name);
  const char *secret = opt[1];
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  char hex[2 * sizeof mac + 1];
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)secret, strlen(secret));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)target, plen);
  for (int i = 0; i < np; i++) {
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ps[i].name, strlen(ps[i].name));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ps[i].value, strlen(ps[i].value));
  }
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)secret, strlen(secret));
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  const char *token = header(head, head_len, "x-tts-access-token", &vlen);
  const int token_ok =
      token && ((vlen == strlen(opt[2]) && memcmp(token, opt[2], vlen) == 0) ||
                (granted[0] && vlen == strlen(granted) && memcmp(token, granted, vlen) == 0));
  if (strlen(sign) != strlen(hex) || sodium_memcmp(sign, hex, strlen(hex)) != 0 || !token_ok) {
    refuse(fd, 401,
           "{\"code\":106001,\"message\":\"Invalid credentials: the sign or the access token "
           "does not match\",\"request_id\":\"bench\"}");
    return;
  }
  const char *pid = memmem(target, plen, "/products/", 10), *pend = NULL;
  if (pid) pid += 10, pend = memchr(pid, '/', target + plen - pid);
  if (!pend) {
    respond(fd, 404, NULL,
            "{\"code\":40006,\"message\":\"Invalid path\",\"request_id\":\"bench\"}");
    return;
  }
  /* {"skus":[{"id":"S","inventory":[{"quantity":N,"warehouse_id":"W"}, ...]}, ...]} */
  const char *end = body + body_len;
  for (const char *p = memmem(body, body_len, "{\"id\":\"", 7); p;
       p = memmem(p, end - p, "{\"id\":\"", 7)) {
    const char *sid = p + 7, *send = memchr(sid, '"', end - sid);
    const char *last = send ? memmem(send, end - send, "]}", 2) : NULL;
    if (!last) break;
    long long n = 0;
    for (const char *q = quantity_after(send, last, &n); q; q = quantity_after(q + 11, last, &n)) {
      const char *w = memmem(q, last - q, "\"warehouse_id\":\"", 16), *wend = NULL;
      if (w) w += 16, wend = memchr(w, '"', last - w);
      char key[256];
      int len = snprintf(key, sizeof key, "%.*s/%.*s@%.*s", (int)(pend - pid), pid,
                         (int)(send - sid), sid, wend ? (int)(wend - w) : 0, wend ? w : "");
      if (len > 0 && len < (int)sizeof key) set_qty(key, len, n);
    }
    p = last;
  }
  char out[128];
  snprintf(out, sizeof out,
           "{\"code\":0,\"data\":{},\"message\":\"Success\",\"request_id\":\"2026%016luPGVES\"}",
           ++seq);
  reply(fd, out);
}

/* POST /auth/o2/token and PATCH /listings/2021-08-01/items/{seller}/{sku}. */
static void amazon(int fd, const char *method, const char *target, size_t tlen, const char *head,
                   size_t head_len, const char *body, size_t body_len) {
  size_t vlen = 0;
  char out[512];
  static const char token_path[] = "/auth/o2/token";
  if (strcmp(method, "POST") == 0 && tlen == sizeof token_path - 1 &&
      memcmp(target, token_path, tlen) == 0) {
    static const char *const names[] = {"client_id", "client_secret", "refresh_token"};
    if (!fields_are(body, body_len, names, (const char *const *)opt, 3)) {
      refuse(fd, 401,
             "{\"error\":\"invalid_client\",\"error_description\":\"Client authentication "
             "failed\"}");
      return;
    }
    snprintf(out, sizeof out,
             "{\"access_token\":\"%s\",\"expires_in\":3600,\"refresh_token\":\"%s\","
             "\"token_type\":\"bearer\"}",
             grant("Atza|bench-access-"), opt[2]);
    reply(fd, out);
    return;
  }
  const char *token = header(head, head_len, "x-amz-access-token", &vlen);
  if (!granted[0] || !token || vlen != strlen(granted) || memcmp(token, granted, vlen) != 0) {
    refuse(fd, 403,
           "{\"errors\":[{\"code\":\"Unauthorized\",\"message\":\"Access to requested resource "
           "is denied.\",\"details\":\"\"}]}");
    return;
  }
  const char *qm = memchr(target, '?', tlen);
  size_t plen = qm ? (size_t)(qm - target) : tlen;
  const char *slash = plen ? memrchr(target, '/', plen) : NULL;
  long long n = 0;
  if (strcmp(method, "PATCH") != 0 || !slash || !quantity_after(body, body + body_len, &n)) {
    respond(fd, 400, NULL, "{\"errors\":[{\"code\":\"InvalidInput\",\"message\":\"bench\"}]}");
    return;
  }
  char sku[256];
  size_t len = decode(slash + 1, target + plen - slash - 1, sku, sizeof sku);
  set_qty(sku, len, n);
  snprintf(out, sizeof out,
           "{\"issues\":[],\"sku\":\"%s\",\"status\":\"ACCEPTED\",\"submissionId\":\"%032lx\"}",
           sku, ++seq);
  respond(fd, 200, "x-amzn-RateLimit-Limit: 5.0\r\nx-amzn-RequestId: bench\r\n", out);
}

/* Handles every complete request in the buffer; returns -1 to close. */
static int serve(struct conn *c) {
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return c->len >= BUF ? -1 : 0;
    size_t head_len = end + 4 - c->buf, vlen = 0, body_len = 0;
    const char *cl = header(c->buf, head_len, "content-length", &vlen);
    if (cl) body_len = strtoul(cl, NULL, 10);
    if (c->len < head_len + body_len) return head_len + body_len > BUF ? -1 : 0;
    char method[8] = "";
    const char *target = memchr(c->buf, ' ', head_len), *tend = NULL;
    if (target && target - c->buf < (long)sizeof method) {
      memcpy(method, c->buf, target - c->buf);
      method[target - c->buf] = 0;
      target++;
      tend = memchr(target, ' ', c->buf + head_len - target);
    }
    if (strncmp(c->buf, "GET /count", 10) == 0) {
      char n[32];
      snprintf(n, sizeof n, "%zu", mode == WEBHOOK ? nrecs : (size_t)handled);
      reply(c->fd, n);
    } else if (mode != WEBHOOK && strncmp(c->buf, "GET /quantities", 15) == 0) {
      char n[32];
      dump_quantities();
      snprintf(n, sizeof n, "%lu", refused);
      reply(c->fd, n);
    } else if (mode != WEBHOOK && !tend) {
      respond(c->fd, 400, NULL, "no request line");
    } else if (mode != WEBHOOK) {
      handled++;
      if (mode == TIKTOK)
        tiktok(c->fd, target, tend - target, c->buf, head_len, c->buf + head_len, body_len);
      else
        amazon(c->fd, method, target, tend - target, c->buf, head_len, c->buf + head_len, body_len);
    } else {
      const char *id = header(c->buf, head_len, "webhook-id", &vlen);
      if (!id) id = header(c->buf, head_len, "idempotency-key", &vlen);
      if (nrecs == caprecs) {
        caprecs = caprecs ? caprecs * 2 : 1 << 16;
        recs = realloc(recs, caprecs * sizeof *recs);
      }
      struct rec *r = &recs[nrecs++];
      r->ns = now_ns();
      snprintf(r->id, sizeof r->id, "%.*s", id ? (int)(vlen < 63 ? vlen : 63) : 1, id ? id : "-");
      reply(c->fd, "{\"ok\":true}");
    }
    size_t used = head_len + body_len;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
  }
}

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[3], "tiktok") == 0)
    mode = TIKTOK;
  else if (argc == 7 && strcmp(argv[3], "amazon") == 0)
    mode = AMAZON;
  else if (argc != 3) {
    fprintf(stderr,
            "usage: sink PORT_FILE DUMP_FILE [tiktok APP_KEY APP_SECRET ACCESS_TOKEN "
            "REFRESH_TOKEN | amazon CLIENT_ID CLIENT_SECRET REFRESH_TOKEN]\n");
    return 2;
  }
  opt = argv + 4;
  dump_path = argv[2];
  if (mode != WEBHOOK && (sodium_init() < 0 || !(qtab = calloc(QCAP, sizeof *qtab)))) {
    fprintf(stderr, "sink: cannot start\n");
    return 1;
  }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) {
    perror("listen");
    return 1;
  }
  socklen_t alen = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &alen);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE *pf = fopen(tmp, "w");
  fprintf(pf, "%d\n", ntohs(a.sin_port));
  fclose(pf);
  rename(tmp, argv[1]);

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (c >= MAX_CONN) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[c] = calloc(1, sizeof(struct conn));
          conns[c]->fd = c;
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      struct conn *c = conns[fd];
      ssize_t r = read(fd, c->buf + c->len, BUF - c->len);
      if (r <= 0 || (c->len += r, serve(c) < 0)) {
        if (r < 0 && errno == EAGAIN) continue;
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        free(c);
        conns[fd] = NULL;
      }
    }
  }
  FILE *df = fopen(argv[2], "w");
  for (size_t i = 0; i < nrecs; i++) fprintf(df, "%s %lld\n", recs[i].id, recs[i].ns);
  fclose(df);
  return 0;
}
