"""No secret in a log line, an exception, `status` output or a `repr`.

The suite-wide scan (`tests/fixtures_secrets.py`) checks what every test
captures; the first test here shows that it catches each kind of leak, and
passes a test that only handles secrets. The others check the types that
carry secrets, and a daemon logging at DEBUG.
"""

from __future__ import annotations

import json
import logging
import pprint
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from credd import credfile
from credd.context import Context
from credd.doctor import FileFacts
from credd.engine import ProfileResult, SourceResult
from credd.errors import MfaError
from credd.mfa import CodeInbox
from credd.model import AccessKey, Credentials, Failure, FailureKind, Secret
from credd.sources import cache as session_cache
from credd.sources.base import Session
from credd.sources.cache import CachedSession
from credd.sources.keys import KeyBasis
from tests import known_secrets
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_secrets import find

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN/never+shown/0123456789abcdefghij"  # a session token, as STS makes them
EXPIRES = datetime(2026, 11, 22, 13, 45, tzinfo=timezone.utc)

# Tests for the scan itself: each one leaks (or does not) in its own way. `ISSUED` stands for a
# session secret the STS front handed out: it is registered as the front registers its own.
LEAKY_TESTS = '''
import logging, subprocess, sys, warnings
from urllib.parse import quote
import pytest
from tests import known_secrets
from tests.conftest import TEST_SECRET_KEY, TEST_TOTP_SEED

ISSUED = "ASIAISSUEDSECRET/made+by/the/front/000000"
known_secrets.remember(ISSUED, "a session secret key issued by the STS front")

def test_prints():
    print("the key is", TEST_SECRET_KEY)

def test_a_subprocess_writes_to_stderr():
    subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write({TEST_TOTP_SEED!r})"], check=True)

def test_logs_at_debug():
    logging.getLogger("credd.engine").debug("using seed %s", TEST_TOTP_SEED)

def test_logs_an_argument_its_message_does_not_use():
    logging.getLogger("credd.sts").info("got a reply", ISSUED)

def test_raises():
    raise RuntimeError(f"STS said {ISSUED}")

def test_an_assertion_shows_it():
    secret = ISSUED
    assert secret == "something else"

def test_url_encoded():
    print("body: SecretAccessKey=" + quote(TEST_SECRET_KEY, safe=""))

@pytest.fixture
def noisy_teardown():
    yield
    print("cleaning up", ISSUED)

def test_leaks_in_teardown(noisy_teardown):
    pass

@pytest.mark.xfail(reason="expected to fail, but not like this")
def test_xfail_that_leaks():
    raise ValueError(TEST_SECRET_KEY)

def test_warns():
    warnings.warn(f"token {ISSUED}")

def test_handles_secrets_without_showing_them():
    secret = ISSUED
    assert secret.startswith("ASIA") and TEST_SECRET_KEY.endswith("KEY")
    print("key AKIA…MPLE, secret", "*" * 8)
    logging.getLogger("credd").debug("a secret of %d characters", len(secret))
'''

EXPECTED = {  # test -> (outcome, where the scan must say it found a secret; None: nowhere)
    "test_prints": ("failed", "the test secret access key (TEST_SECRET_KEY) in the stdout call"),
    "test_a_subprocess_writes_to_stderr": ("failed", "the test TOTP seed (TEST_TOTP_SEED) in the stderr call"),
    "test_logs_at_debug": ("failed", "the test TOTP seed (TEST_TOTP_SEED) in the log records call"),
    "test_logs_an_argument_its_message_does_not_use": ("failed", "issued by the STS front in the log records call"),
    "test_raises": ("failed", "issued by the STS front in the failure report (call)"),
    "test_an_assertion_shows_it": ("failed", "issued by the STS front in the failure report (call)"),
    "test_url_encoded": ("failed", "the test secret access key (TEST_SECRET_KEY) in the stdout call"),
    "test_leaks_in_teardown": ("error", "issued by the STS front in the stdout teardown"),
    "test_xfail_that_leaks": ("failed", "the test secret access key (TEST_SECRET_KEY) in the failure report (call)"),
    "test_warns": ("passed", None),  # the test passes; the run fails, and the summary says why
    "test_handles_secrets_without_showing_them": ("passed", None),
}


def test_the_scan_fails_every_kind_of_leak_and_shows_none(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "tests.fixtures_secrets", "-p", "no:cacheprovider", "-rA")
    output = result.stdout.str() + result.stderr.str()
    outcomes = {}
    for match in re.finditer(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) test_leaky\.py::(\w+)", output, re.MULTILINE):
        outcomes.setdefault(match.group(2), set()).add(match.group(1).lower())
    assert {name: outcome for name, (outcome, _) in EXPECTED.items()} == \
           {name: "error" if "error" in got else got.pop() for name, got in outcomes.items()}
    for name, (_, where) in EXPECTED.items():
        if where is not None:
            assert re.search(rf"secret leak: test_leaky\.py::{name}: [^\n]*{re.escape(where)}", output), name
    assert "secret leak: test_leaky.py::test_warns: a session secret key issued by the STS front in a warning" \
        in output
    assert "test_handles_secrets_without_showing_them: " not in output  # nothing reported about it
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # What the scan found, it shows as [REDACTED]: the run's whole output holds none of the values.
    assert "[REDACTED]" in output
    assert not find(output)
    assert "ASIAISSUEDSECRET" not in output and "ASIAISSUEDSECRET%2F" not in output


# Types that carry secrets -------------------------------------------------------------------------------


def shown(value: object) -> str:
    """Every way a value gets turned into text by accident: repr, str, format, containers, logs, pprint, errors."""
    record = logging.LogRecord("credd", logging.ERROR, __file__, 1, "%s %r", (value, value), None)
    try:
        json.dumps(value)
        as_json = ""
    except TypeError as e:
        as_json = str(e)
    return "\n".join([repr(value), str(value), f"{value}", f"{value!r}", format(value, ""), repr([value]),
                      repr({"key": value}), str((value,)), record.getMessage(), pprint.pformat(value),
                      pprint.pformat({"nested": [value]}), str(RuntimeError(value)), as_json])


def leaked(value: object) -> list[str]:
    """What `value` shows of the test's secrets, by label (never the values: an assertion prints this)."""
    text = shown(value)
    found = [known_secrets.describe(secret) for secret in find(text)]
    return found + [label for label, secret in (("the session token", TOKEN), ("the MFA code", "492039"))
                    if secret in text]


def secret_holders() -> dict[str, object]:
    key = AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY))
    creds = Credentials("ASIAEXAMPLESESSION01", Secret(TEST_SECRET_KEY), Secret(TOKEN), EXPIRES)
    cached = CachedSession(creds, TEST_KEY_ID, "arn:aws:iam::111111111111:mfa/alice")
    failure = Failure(FailureKind.MFA_INVALID, "source 'alice': AWS rejected the MFA code", False, "AccessDenied")
    result = ProfileResult("p", creds, None, True)
    inbox = CodeInbox()
    inbox.put("alice", "492039")
    return {
        "Secret": Secret(TEST_SECRET_KEY), "seed": Secret(TEST_TOTP_SEED), "MFA code": Secret("492039"),
        "AccessKey": key, "Credentials": creds, "CachedSession": cached, "the keyring entry of a session":
        session_cache.dump(cached), "sources.base.Session": Session(creds, "sts"), "sources.keys.KeyBasis":
        KeyBasis(key, "arn:aws:iam::111111111111:mfa/alice"), "ProfileResult": result,
        "SourceResult": SourceResult("alice", {"p": result}, "sts", None, None), "Failure": failure,
        "MfaError": MfaError(failure), "CodeInbox": inbox, "AccessKey from the credentials file":
        credfile.read_long_term_key(f"[p]\naws_access_key_id = {TEST_KEY_ID}\n"
                                    f"aws_secret_access_key = {TEST_SECRET_KEY}\n", "p"),
    }


@pytest.mark.parametrize("name", list(secret_holders()))
def test_types_that_carry_secrets_never_show_them(name: str):
    value = secret_holders()[name]
    found = leaked(value)  # kept apart: an assertion that fails explains its subexpressions, with their reprs
    assert found == []
    if isinstance(value, AccessKey):
        assert TEST_KEY_ID not in shown(value)  # a long-term key id shows masked (AKIA…MPLE)


def test_a_secret_cannot_be_pickled_copied_or_serialised():
    import copy
    import pickle

    secret = Secret(TEST_SECRET_KEY)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy, json.dumps):
        with pytest.raises(TypeError) as caught:
            attempt(secret)
        assert not find(str(caught.value))
    assert secret.reveal() == TEST_SECRET_KEY  # the one way to the value, easy to grep for


def value_holders() -> dict[str, object]:
    text = f"[p]\naws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
    document = credfile.parse(text)
    # Every kind of edit: a value replaced, a key added after a line, a section appended.
    edits = credfile._Edits()
    credfile._set_keys(document, "p", {"aws_access_key_id": "AKIAOTHERKEYEXAMPLE1",
                                       "aws_secret_access_key": TOKEN, "aws_session_token": TOKEN}, edits)
    credfile._set_keys(document, "q", {"aws_secret_access_key": TEST_SECRET_KEY}, edits)
    assert edits.replaced and edits.after and edits.appended
    return {"credfile.Document": document, "credfile.Section": document.sections["p"], "credfile._Edits": edits,
            "credfile.Key": document.sections["p"].keys["aws_secret_access_key"],
            "doctor.FileFacts": FileFacts("credentials", "credentials", text=text),
            "Context (its env may hold AWS_SECRET_ACCESS_KEY)": Context(env={"AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY})}


@pytest.mark.parametrize("name", list(value_holders()))
def test_types_that_hold_raw_file_or_environment_values_do_not_show_them(name: str):
    found = leaked(value_holders()[name])
    assert found == []


# A real daemon at DEBUG -----------------------------------------------------------------------------------


def test_a_daemon_at_debug_level_shows_no_secret_in_its_log_status_or_doctor(daemon, live_sts):
    daemon.env["CREDD_LOG_LEVEL"] = "DEBUG"
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    role = json.loads(daemon.credd("process", "prod-admin").stdout)  # moto's role credentials: not registered
    refreshed = daemon.credd("refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    outputs = [daemon.credd("status"), daemon.credd("status", "--json"), refreshed, daemon.credd("doctor")]
    assert daemon.stop() == 0
    log = daemon.log()
    assert " DEBUG " in log  # it did log at DEBUG
    assert live_sts.issued, "the front issued no session: nothing was tested"
    text = log + "".join(result.stdout + result.stderr for result in outputs)
    found = [known_secrets.describe(secret) for secret in find(text)]
    found += [name for name in ("SecretAccessKey", "SessionToken") if role[name] in text]
    assert found == []
