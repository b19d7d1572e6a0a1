#!/usr/bin/env python3
"""Rough throughput check for test/mock/sink.py.

Starts the sink (unless --port is given), then POSTs small JSON bodies from
N threads, each on its own keep-alive http.client connection, for a fixed
time, and prints requests/s.  Python clients are themselves slow, so this is
a lower bound on what the sink can take; use --procs to spread the client
over several processes.
"""

import argparse
import http.client
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = b'{"event_id":12345,"topic":"orders","payload":{"id":1,"amount":"9.99"}}'


def worker(port, deadline, counts, idx):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    hdrs = {"Content-Type": "application/json"}
    while time.time() < deadline:
        conn.request("POST", "/bench", body=BODY, headers=hdrs)
        r = conn.getresponse()
        r.read()
        n += 1
    conn.close()
    counts[idx] = n


def proc_main(port, threads, deadline, q):
    counts = [0] * threads
    ts = [threading.Thread(target=worker, args=(port, deadline, counts, i))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(sum(counts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()

    sink = None
    port = args.port
    if port is None:
        d = tempfile.mkdtemp()
        pf = os.path.join(d, "port")
        sink = subprocess.Popen([sys.executable, os.path.join(HERE, "sink.py"),
                                 "--port", "0", "--port-file", pf, "--quiet"])
        for _ in range(100):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        port = int(open(pf).read())
    try:
        deadline = time.time() + args.seconds
        q = multiprocessing.Queue()
        ps = [multiprocessing.Process(target=proc_main,
                                      args=(port, args.threads, deadline, q))
              for _ in range(args.procs)]
        t0 = time.time()
        for p in ps:
            p.start()
        total = sum(q.get() for _ in ps)
        for p in ps:
            p.join()
        el = time.time() - t0
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/_requests/count")
        recorded = c.getresponse().read().decode()
        print("%d requests in %.2fs = %.0f req/s (%d procs x %d threads); "
              "sink recorded %s" % (total, el, total / el, args.procs,
                                    args.threads, recorded))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    main()
