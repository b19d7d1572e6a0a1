/*
 * A minimal HTTP/1.1 sink for the outbox benchmarks: keep-alive, epoll, one
 * thread, answers 200 to every request as soon as its body has arrived, and
 * remembers when each webhook-id / Idempotency-Key arrived.
 *
 *   sink PORT_FILE DUMP_FILE
 *     Listens on 127.0.0.1, a free port, written to PORT_FILE.
 *     GET /count answers the number of requests received so far.
 *     On SIGTERM writes "id unix_ns" per request to DUMP_FILE and exits.
 *
 * Python's servers cannot take 10,000 requests per second on two cores that
 * the database shares; this one costs the machine little, so the figure is
 * the worker's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

static void reply(int fd, const char *body) {
  char out[256];
  int n = snprintf(out, sizeof out,
                   "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n\r\n%s",
                   strlen(body), body);
  ssize_t w = write(fd, out, n);
  (void)w;
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
    if (strncmp(c->buf, "GET /count", 10) == 0) {
      char n[32];
      snprintf(n, sizeof n, "%zu", nrecs);
      reply(c->fd, n);
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
  if (argc != 3) {
    fprintf(stderr, "usage: sink PORT_FILE DUMP_FILE\n");
    return 2;
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
