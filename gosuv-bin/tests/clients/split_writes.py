#!/usr/bin/env python3
"""Clients that send each request's head and its body in two writes, as Python's http.client
(and so `requests`) does whenever a body is given: the head goes out in one send(2), the body
in the next. A server that answers before the body has arrived and then closes the
connection makes such a client fail with BrokenPipeError or ConnectionResetError.

    split_writes.py URL SECONDS CLIENTS PROGRAM... [--auth USER:PASSWORD] [--pause-ms MS]

URL is unix:///path/to/socket or http://HOST:PORT. Each client keeps one connection open
(HTTP/1.1 keep-alive; http.client opens a new one when the server closes it after saying
so) and, until SECONDS have passed, sends POST /api/programs/NAME/{start,stop,restart} with
the body {} for random programs, half of them with ?wait=false, and one in ten for a
program that does not exist (both answered at once, so before a late body could arrive);
with --pause-ms, every other request waits that long
between its head and its body (as a client on a loaded machine may), which makes an early
answer all but certain instead of a rare race. Prints one JSON line: the number of requests, the count of
each status, and the count of each transport error with a few examples.
"""

import base64
import http.client
import json
import random
import socket
import sys
import threading
import time

ACTIONS = ("start", "stop", "restart")


class PausingConnection(http.client.HTTPConnection):
    """http.client, which may pause between a request's head and its body."""

    pause = 0.0

    def putrequest(self, *args, **kwargs):
        self.head_sent = False
        super().putrequest(*args, **kwargs)

    def send(self, data):
        # http.client sends the head in one call, then the body in the next ones.
        if getattr(self, "head_sent", False) and self.pause:
            time.sleep(self.pause)
        super().send(data)
        self.head_sent = True


class UnixConnection(PausingConnection):
    """http.client over a unix socket: only how it connects differs."""

    def __init__(self, socket_path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.socket_path)
        self.sock = s


def main():
    args = sys.argv[1:]
    auth = None
    if "--auth" in args:
        i = args.index("--auth")
        auth = args[i + 1]
        del args[i : i + 2]
    pause = 0.0
    if "--pause-ms" in args:
        i = args.index("--pause-ms")
        pause = float(args[i + 1]) / 1000
        del args[i : i + 2]
    url, seconds, clients, programs = args[0], float(args[1]), int(args[2]), args[3:]
    if not programs:
        sys.exit("split_writes.py: name at least one program")

    def connection():
        if url.startswith("unix://"):
            return UnixConnection(url[len("unix://") :], timeout=60)
        host, _, port = url[len("http://") :].rstrip("/").partition(":")
        return PausingConnection(host, int(port), timeout=60)

    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()

    lock = threading.Lock()
    statuses = {}
    errors = {}
    examples = []
    requests = [0]
    deadline = time.monotonic() + seconds

    def client(seed):
        rng = random.Random(seed)
        conn = connection()
        while time.monotonic() < deadline:
            name = rng.choice(programs) if rng.random() < 0.9 else "no-such-program"
            action = rng.choice(ACTIONS)
            path = f"/api/programs/{name}/{action}"
            if rng.random() < 0.5:
                path += "?wait=false"
            conn.pause = pause if rng.random() < 0.5 else 0.0
            try:
                # A body given separately: http.client writes the head, then the body.
                conn.request("POST", path, body=b"{}", headers=headers)
                resp = conn.getresponse()
                resp.read()
                key = str(resp.status)
                with lock:
                    requests[0] += 1
                    statuses[key] = statuses.get(key, 0) + 1
            except Exception as e:  # every failure of the transport is what is counted
                kind = type(e).__name__
                with lock:
                    requests[0] += 1
                    errors[kind] = errors.get(kind, 0) + 1
                    if len(examples) < 5:
                        examples.append(f"{action} {name}: {kind}: {e}")
                conn.close()
                conn = connection()
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(
        json.dumps(
            {
                "requests": requests[0],
                "statuses": statuses,
                "errors": errors,
                "examples": examples,
            }
        )
    )


if __name__ == "__main__":
    main()
