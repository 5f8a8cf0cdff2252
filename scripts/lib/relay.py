"""relay.py: a byte relay between a TCP port and a unix socket, for
fresh-machine-check.sh: apt inside the check's network namespace reaches
the Debian mirror through it (the namespace has only its loopback).

  relay.py unix-to-tcp PATH HOST PORT   listen on unix socket PATH; each
                                        connection goes to HOST:PORT
  relay.py tcp-to-unix PORT PATH        listen on 127.0.0.1:PORT; each
                                        connection goes to unix socket PATH
"""

import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(listener, connect):
    while True:
        client, _ = listener.accept()
        try:
            upstream = connect()
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def tcp_client(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(None)
    return s


def unix_client(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def main(argv):
    if len(argv) == 5 and argv[1] == "unix-to-tcp":
        path, host, port = argv[2], argv[3], int(argv[4])
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
        serve(listener, lambda: tcp_client(host, port))
    elif len(argv) == 4 and argv[1] == "tcp-to-unix":
        port, path = int(argv[2]), argv[3]
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        serve(listener, lambda: unix_client(path))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
