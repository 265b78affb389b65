#!/usr/bin/env python3
"""Stand-in for Traefik on the host network, run inside a node namespace by the netlab harness.

Port 80 answers every request with ``308`` to ``https://<Host>/<path>`` (Traefik's permanent
entryPoint redirect); port 443 speaks TLS with the given certificate and answers 200. With
``--acme-cert/--acme-key/--acme-when FILE`` it serves ``--cert`` (Traefik's self-signed default) until
FILE exists and the ACME certificate from then on, as Traefik does once Let's Encrypt has answered.
Standard library only: it runs as a plain script under ``ip netns exec``.
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IP_FREEBIND = 15  # linux/in.h; lets us bind the VIP before the node holds it (like Traefik waiting for it)


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None
    node_name = ""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        # skip HTTPServer.server_bind: its getfqdn() would do a DNS lookup
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # handshake here, in the per-connection thread, so one stuck client cannot block accept()
        request.settimeout(5)
        if self.tls is not None:
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: object, client_address: object) -> None:
        # a client rejecting our certificate is an expected outcome in tests: one line, no traceback
        print(f"standin: {client_address}: {sys.exc_info()[1]!r}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandinServer

    def _answer(self) -> None:
        if self.server.tls is None:
            host = self.headers.get("Host", "")
            # drop the port like Traefik's redirect to the default https port does
            host = host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]
            self.send_response(308)
            self.send_header("Location", f"https://{host}{self.path}")
            body = b""
        else:
            self.send_response(200)
            body = b"labup stand-in: ok\n"
        self.send_header("X-Standin-Node", self.server.node_name)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def watch_parent() -> None:
    # die with the test process even if it is SIGKILLed, so no server outlives its namespaces
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--https-port", type=int, default=443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--name", default="")
    ap.add_argument("--acme-cert")
    ap.add_argument("--acme-key")
    ap.add_argument("--acme-when", help="serve the ACME certificate once this file exists")
    args = ap.parse_args()

    http = StandinServer((args.bind, args.http_port), Handler)
    https = StandinServer((args.bind, args.https_port), Handler)
    https.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    https.tls.load_cert_chain(args.cert, args.key)
    if args.acme_cert:
        flag = args.acme_when
        loaded: list[ssl.SSLContext] = []

        def pick(tls: ssl.SSLObject, sni: str | None, ctx: ssl.SSLContext) -> None:
            if flag and os.path.exists(flag):
                if not loaded:  # read when it comes (a Secret Traefik watches is written after it starts)
                    issued = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    issued.load_cert_chain(args.acme_cert, args.acme_key)
                    loaded.append(issued)
                tls.context = loaded[0]

        https.tls.sni_callback = pick  # type: ignore[assignment]
    for srv in (http, https):
        srv.node_name = args.name
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()
    print("READY", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
