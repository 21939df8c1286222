"""Client side of the stand-in API servers (molecule/cluster/files/apiserver_standin.py), for the LB tests.

Shared by molecule/cluster and molecule/lb_pair (which links to this file).
"""
import socket
import ssl


def served_by(address, port=6443):
    """One request through a load balancer at address:port: the name of the control plane that answered."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stand-ins' certificates are self-signed, as a fresh cluster's CA is
    with socket.create_connection((address, port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"GET /whoami HTTP/1.0\r\n\r\n")
            answer = b""
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1].decode().strip()
