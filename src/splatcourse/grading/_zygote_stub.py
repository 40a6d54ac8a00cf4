"""What jupyter_client launches as "the kernel" in warm mode (see zygote).

Standard library only and run with ``python -I -S``, so it starts in milliseconds. It hands its
stdin/stdout/stderr and the kernel request to the zygote, forwards the signals jupyter_client
sends (interrupt, terminate) to the forked kernel, and exits with the kernel's exit code. If
this process is killed, the zygote sees the connection close and kills the kernel.

    python -I -S _zygote_stub.py ZYGOTE_SOCKET REQUEST_JSON

Used by: the warm sandbox (grading/sandbox.py), for every exercise's grading.
"""

import json
import os
import signal
import socket
import sys


def main() -> int:
    path, request = sys.argv[1], sys.argv[2]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        socket.send_fds(conn, [request.encode() + b"\n"], [0, 1, 2])
    except OSError as err:
        print(f"kernel stub: cannot reach the kernel zygote at {path}: {err}", file=sys.stderr)
        return 1
    kernel = None

    def forward(signum, _frame):
        if kernel is not None:
            try:
                os.kill(kernel, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    buffer = b""
    while True:
        try:
            chunk = conn.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            print("kernel stub: the zygote closed the connection", file=sys.stderr)
            return 1
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            msg = json.loads(line)
            if "error" in msg:
                print(f"kernel stub: {msg['error']}", file=sys.stderr)
                return 1
            if "pid" in msg:
                kernel = msg["pid"]
            if "exit" in msg:
                code = msg["exit"]
                return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
