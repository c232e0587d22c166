"""A cost model for a faster hook, not a hook: what `credd process P` would cost without json and re.

    python bench/hook_prototype.py PROFILE

Connects to $CREDD_SOCKET (else $XDG_RUNTIME_DIR/credd/credd.sock), sends the credentials request, and copies the
daemon's reply to stdout, importing only `_socket`, `os` and `sys` (already
loaded at start-up). It does what the real hook does on the wire and in
system calls, minus the imports that cost the most: `json` (which imports
`re`, which imports `enum`) and the `import re` of pip's console-script
wrapper. A real hook built this way would need the daemon to send the
credential_process JSON ready to print, and would check it with string
operations; bench_hook.py times this file run by path beside the real hook.
"""

import _socket
import os
import sys


def main() -> int:
    profile = sys.argv[1]
    if not profile or not all(c.isascii() and (c.isalnum() or c in "_.@+=,-") for c in profile):
        sys.stderr.write("credd: not a profile name\n")
        return 1
    client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    client.settimeout(45)
    client.connect(os.environ.get("CREDD_SOCKET") or os.environ["XDG_RUNTIME_DIR"] + "/credd/credd.sock")
    client.sendall(b'{"op":"credentials","profile":"' + profile.encode() + b'"}\n')
    client.shutdown(_socket.SHUT_WR)
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    client.close()
    if not data.startswith(b'{"ok":true'):
        sys.stderr.write("credd: the daemon refused\n")
        return 1
    os.write(1, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
