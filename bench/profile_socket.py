"""Where a warm `credd serve` spends its CPU under the socket benchmark's 50-client load (py-spy).

    .venv/bin/python bench/profile_socket.py --py-spy PATH [--seconds 8] [--clients 50]

Not part of run_all: it needs py-spy (install it into a throw-away venv, e.g.
`python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy`, never into
.venv) and the right to ptrace the daemon. py-spy samples the daemon, without
pausing it, only while a thread holds the GIL (`--gil --nonblocking`): the
daemon's Python CPU time. Prints the share of samples per thread and the
frames that take the most, inclusive of what they call.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from pathlib import Path

from bench_socket import concurrent
from common import markdown, running_daemon

from credd.commands.demo import demo_env, local_sts

FRAME_LINE = re.compile(r":\d+\)$")
# Frames every sample of a thread passes through: no information.
OUTER = ("_run_module_as_main", "_run_code", "<module>", "main (", "run (", "Runner.run",
         "BaseEventLoop.run_forever", "BaseEventLoop.run_until_complete", "Thread._bootstrap", "Thread.run")
# Shown even outside the top: credd's own steps and the thread-pool hop.
SELECTED = ("Daemon.", "decode_request", "encode (credd", "peer_uid", "BaseEventLoop.run_in_executor",
            "BaseEventLoop.call_soon_threadsafe", "wait_for")


def aggregate(raw: str, top: int) -> tuple[str, str]:
    """(samples per thread, top frames inclusive) from py-spy's raw (collapsed) output."""
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        samples = int(count)
        total += samples
        threads[re.sub(r"^thread \(\d+\): |_\d+$", "", frames[0])] += samples
        for frame in dict.fromkeys(FRAME_LINE.sub(")", frame) for frame in frames[1:]):
            inclusive[frame] += samples
    share = [(name, f"{count / total * 100:.1f}") for name, count in threads.most_common()]
    ranked = [name for name, _ in inclusive.most_common() if not name.startswith(OUTER)][:top]
    ranked += [name for name in inclusive if name.startswith(SELECTED) and name not in ranked]
    frames = [(f"`{name}`", f"{inclusive[name] / total * 100:.1f}") for name in ranked]
    return (markdown(("thread", "% of samples"), share, "l"),
            markdown(("frame (inclusive of its callees)", "% of samples"), frames, "l"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", required=True, help="path to the py-spy executable")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as endpoint:
        root = Path(temp)
        env = demo_env(root)
        with running_daemon(env, endpoint, {"p": "arn:aws:iam::210987654321:role/Admin"}, write=False) as daemon:
            path, out = env["CREDD_SOCKET"], root / "profile.txt"
            concurrent(path, 500, args.clients)  # warm-up
            spy = subprocess.Popen([args.py_spy, "record", "--pid", str(daemon.pid), "--duration", str(args.seconds),
                                    "--rate", "500", "--gil", "--nonblocking", "--threads", "--format", "raw",
                                    "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            requests = 0
            while spy.poll() is None:
                concurrent(path, 2000, args.clients)
                requests += 2000
            if spy.returncode != 0:
                raise SystemExit(f"py-spy failed: {spy.stderr.read()[-500:]}")
            threads, frames = aggregate(out.read_text(), args.top)
    print(f"### Where credd serve's CPU goes at {args.clients} concurrent clients\n\n"
          f"py-spy, {args.seconds} s, samples while a thread holds the GIL; {requests:,} requests meanwhile\n")
    print(threads + "\n\n" + frames)


if __name__ == "__main__":
    main()
