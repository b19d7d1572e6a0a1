/*
 * A fixed HTTP load for bench/platforms.sh: sends the raw request in
 * REQUEST_FILE TOTAL times over CONNS keep-alive connections to
 * 127.0.0.1:PORT, a new request on a connection as soon as its answer has
 * arrived, and prints how many answers came, how fast, and how many were
 * not 200. It costs next to nothing itself, so the server's CPU time over
 * the run is what that server spends per request.
 *
 *   http_load PORT CONNS TOTAL REQUEST_FILE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMaxConns = 64, kBuffer = 16384 };

static char request[65536];
static size_t request_len;

static int send_request(int fd) {
  size_t off = 0;
  while (off < request_len) {
    ssize_t n = write(fd, request + off, request_len - off);
    if (n <= 0) return -1;
    off += (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: http_load PORT CONNS TOTAL REQUEST_FILE\n");
    return 2;
  }
  int port = atoi(argv[1]), conns = atoi(argv[2]), total = atoi(argv[3]);
  if (conns < 1 || conns > kMaxConns || total < conns) {
    fprintf(stderr, "http_load: 1 <= CONNS <= %d and TOTAL >= CONNS\n", kMaxConns);
    return 2;
  }
  FILE *f = fopen(argv[4], "rb");
  if (!f) {
    perror(argv[4]);
    return 2;
  }
  request_len = fread(request, 1, sizeof request, f);
  fclose(f);

  static char buf[kMaxConns][kBuffer];
  int fds[kMaxConns], have[kMaxConns];
  struct pollfd p[kMaxConns];
  int sent = 0, answered = 0, not_ok = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < conns; i++) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0 || send_request(fds[i]) != 0) {
      perror("http_load: connect");
      return 1;
    }
    have[i] = 0;
    sent++;
  }
  while (answered < total) {
    for (int i = 0; i < conns; i++) {
      p[i].fd = fds[i];
      p[i].events = POLLIN;
    }
    if (poll(p, (nfds_t)conns, 10000) <= 0) {
      fprintf(stderr, "http_load: no answer for 10 s\n");
      return 1;
    }
    for (int i = 0; i < conns; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i], buf[i] + have[i], (size_t)(kBuffer - 1 - have[i]));
      if (n <= 0) {
        fprintf(stderr, "http_load: the server closed a connection\n");
        return 1;
      }
      have[i] += (int)n;
      buf[i][have[i]] = '\0';
      /* One complete answer: its head and Content-Length bytes of body. */
      char *end = strstr(buf[i], "\r\n\r\n");
      if (!end) continue;
      char *cl = strcasestr(buf[i], "\r\nContent-Length:");
      int need = (int)(end + 4 - buf[i]) + (cl && cl < end ? atoi(cl + 17) : 0);
      if (have[i] < need) continue;
      if (strncmp(buf[i], "HTTP/1.1 200 ", 13) != 0 && not_ok++ == 0)
        fprintf(stderr, "http_load: first answer that is not 200: %.200s\n", buf[i]);
      memmove(buf[i], buf[i] + need, (size_t)(have[i] - need));
      have[i] -= need;
      answered++;
      if (sent < total) {
        if (send_request(fds[i]) != 0) return 1;
        sent++;
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%d %.3f %d\n", answered, s, not_ok);
  return 0;
}
