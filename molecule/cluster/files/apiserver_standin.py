"""Stand-in for a kube-apiserver in the container lab (there is no kubeadm here): TLS on 6443.

GET /readyz answers 200 "ok" while /run/gpulab-standin/ready exists, else 500 (what an API server that lost etcd
does); every other path answers 200 with this node's name, so a client of the load balancer sees which
control plane served it. Test scaffolding of molecule/cluster, not part of the collection.
"""
import http.server
import os
import socket
import ssl
import sys

READY = "/run/gpulab-standin/ready"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path.startswith("/readyz"):
            code, body = (200, b"ok") if os.path.exists(READY) else (500, b"[-]etcd failed: stand-in not ready")
        else:
            code, body = 200, socket.gethostname().encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(cert, key, port=6443):
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
