"""End to end with the real AWS CLI v2: `aws sts get-caller-identity` through credd's hook against static keys.

    .venv/bin/python bench/bench_awscli.py [--runs 40] [--aws /usr/bin/aws]

One credd daemon (warm) writes role profile `p` into the throw-away home's
credentials file. Two profiles of ~/.aws/config then reach the same
credentials: `p` reads them as static keys from the credentials file, `p-hook`
runs `credential_process = credd process p`. Both call the same local STS
(moto on loopback, `--endpoint-url`), interleaved. The ratio of the medians is
what credd's hook adds to a real AWS CLI call.

The AWS CLI v2 is Debian's /usr/bin/aws (a pip-installed v1 `aws` may come
first on PATH); v2.9 does not read AWS_ENDPOINT_URL, hence `--endpoint-url`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import common
from common import CREDD_SCRIPT, running_daemon, time_commands, timing_table

from credd.commands.demo import demo_env, local_sts

PROFILE = "p"


def aws_config(home: Path) -> None:
    (home / ".aws").mkdir(mode=0o700, exist_ok=True)
    (home / ".aws" / "config").write_text(
        f"[profile {PROFILE}]\nregion = us-east-1\n\n"
        f"[profile {PROFILE}-hook]\nregion = us-east-1\ncredential_process = {CREDD_SCRIPT} process {PROFILE}\n")


def version(aws: str, env: dict[str, str]) -> str:
    return subprocess.run([aws, "--version"], env=env, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--aws", default="/usr/bin/aws", help="the AWS CLI v2 (default: Debian's)")
    args = parser.parse_args()
    if not shutil.which(args.aws):
        print(f"### End to end with the AWS CLI v2\n\nskipped: {args.aws} is not installed "
              "(Debian: apt-get install awscli)")
        return
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as endpoint:
        home = Path(temp)
        env = demo_env(home)  # HOME is the throw-away one: ~/.aws below is not the user's
        env.update(AWS_PAGER="", AWS_EC2_METADATA_DISABLED="true")
        with running_daemon(env, endpoint, {PROFILE: "arn:aws:iam::210987654321:role/Admin"}):
            aws_config(home)
            call = [args.aws, "sts", "get-caller-identity", "--endpoint-url", endpoint, "--profile"]
            commands = {
                f"aws sts get-caller-identity --profile {PROFILE} (static keys in the file)": [*call, PROFILE],
                f"aws sts get-caller-identity --profile {PROFILE}-hook (credd process {PROFILE})":
                    [*call, f"{PROFILE}-hook"],
            }
            times = time_commands(commands, env, args.runs, expect_ok=list(commands))
            cli = version(args.aws, env)
    print(f"### End to end with the AWS CLI v2\n\n{args.runs} runs each, interleaved, daemon warm; {cli}; "
          f"{common.machine()}\n")
    print(timing_table(times, next(iter(commands)), digits=0))


if __name__ == "__main__":
    main()
