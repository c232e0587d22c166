"""The README's table of which SDK reads which path: botocore's two cells no other module backs, and the table's check.

botocore runs in its own Python process, as an application does, with only a
profile in its environment: `AWS_PROFILE` names a profile credd writes into the
credentials file, or one wired to `credential_process = credd process NAME`.
The table's check: every test a cell names exists, so the table cannot point
at a test that was renamed or removed.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.fixtures_daemon import daemon_config
from tests.test_js_sdk import FILE_PROFILE, wire_hook

ROOT = Path(__file__).resolve().parent.parent
HEADING = "### Which SDK reads which path"
BOTOCORE = ("import botocore.session, sys\n"
            "session = botocore.session.get_session()\n"
            "print(session.get_credentials().method)\n"
            "sts = session.create_client('sts', region_name='us-east-1', endpoint_url=sys.argv[1])\n"
            "print(sts.get_caller_identity()['Arn'])\n")


def botocore_caller(daemon, sts_url: str, profile: str) -> tuple[str, str]:
    """(the credentials' method, the caller's ARN) as botocore in its own process gets them."""
    env = dict(daemon.env, AWS_PROFILE=profile, AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run([sys.executable, "-c", BOTOCORE, sts_url], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr + daemon.log()
    method, arn = result.stdout.split()
    return method, arn


def test_botocore_reads_the_role_credd_wrote_into_the_credentials_file(daemon, live_sts):
    daemon.home.write_config(daemon_config(live_sts.url, extra_profiles=FILE_PROFILE))
    daemon.start()
    daemon.wait_state("prod-file", "fresh")
    method, arn = botocore_caller(daemon, live_sts.url, "prod-file")
    assert method == "shared-credentials-file"
    assert ":assumed-role/Admin/" in arn


def test_botocore_gets_the_role_through_the_hook(daemon, live_sts):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    wire_hook(daemon, "prod-admin")  # prod-admin has write: false, so only the hook serves it
    method, arn = botocore_caller(daemon, live_sts.url, "prod-admin")
    assert method == "custom-process"
    assert ":assumed-role/Admin/" in arn


def table_cells(readme: str) -> dict[tuple[str, str], str]:
    """{(SDK, path): cell} of the table under HEADING."""
    section = readme.split(HEADING, 1)[1].split("\n#", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0]]
    return {(row[0].strip(), header[i]): cell.strip() for row in rows[2:] for i, cell in enumerate(row) if i}


def defined_tests(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_the_sdk_table_names_exists():
    cells = table_cells((ROOT / "README.md").read_text())
    assert {sdk for sdk, _ in cells} == {"AWS CLI v2", "botocore", "JavaScript SDK v3"}
    assert {path for _, path in cells} == {"credentials file", "`credential_process`", "container endpoint", "IMDS"}
    for (sdk, path), cell in cells.items():
        named = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", cell)
        assert named, f"{sdk} x {path} names no test"
        for module, test in named:
            assert test in defined_tests(ROOT / module), f"{sdk} x {path}: {module}::{test} does not exist"
