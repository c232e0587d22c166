"""The suite-wide secret scan: every captured stream, log and failure report is checked for test secrets.

For every phase (setup, call, teardown) of every test, the report's captured
stdout and stderr (fd level: subprocesses that write to the test's own
streams are in there too), every log record emitted meanwhile (credd's
loggers are opened to DEBUG for the test, and a handler on the root logger
keeps each record formatted, with its traceback and its raw arguments), the
failure report (exceptions, their reprs, assertion diffs) and the user
properties are searched for every secret in `tests.known_secrets`: the fixed
test secret key and TOTP seed, and each session secret and token the strict
STS front has handed out so far. Warnings are checked as they are recorded.

A leak fails that test (a passing one included) with a message that names
the stream and what kind of secret it was. The value itself is replaced by
`[REDACTED]` in everything the report shows, so the scan never prints the
secret it found. A test that asserts on a secret it got legitimately (the
hook's JSON, say) is fine: only what is printed, logged or reported counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from tests import known_secrets
from tests.conftest import TEST_SECRET_KEY, TEST_TOTP_SEED

REDACTED = "[REDACTED]"
WATCHED_LOGGERS = ("credd",)  # opened to DEBUG for every test, so debug lines are scanned too


@dataclass
class Tally:
    """What one run scanned, for the summary line (and SECURITY.md's figures)."""

    tests: int = 0
    reports: int = 0
    streams: int = 0
    leaks: list[str] = field(default_factory=list)  # "nodeid: where", never a value


_tally = Tally()
_taps = pytest.StashKey["_LogTap"]()


class _LogTap(logging.Handler):
    """Keeps every record that reaches the root logger, formatted as a log file would hold it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except (TypeError, ValueError, KeyError):  # arguments that do not fit the message: keep both raw
            text = f"{record.msg!r} % {record.args!r}"
        # The raw arguments too: a handler with another format (journald's fields) would ship them.
        self.lines.append(f"{text} {record.args!r}" if record.args else text)

    def take(self) -> str:
        text, self.lines = "\n".join(self.lines), []
        return text


def pytest_configure(config: pytest.Config) -> None:
    known_secrets.remember(TEST_SECRET_KEY, "the test secret access key (TEST_SECRET_KEY)")
    known_secrets.remember(TEST_TOTP_SEED, "the test TOTP seed (TEST_TOTP_SEED)")


def _forms(secret: str) -> tuple[str, ...]:
    """The value, and as it looks URL-encoded (in a query string or a form body)."""
    encoded = quote(secret, safe="")
    return (secret,) if encoded == secret else (secret, encoded)


def find(text: str) -> list[str]:
    """The registered secrets (in any of their forms) that occur in `text`."""
    return [secret for secret in known_secrets.all() if any(form in text for form in _forms(secret))]


def redact(text: str) -> str:
    for secret in known_secrets.all():
        for form in _forms(secret):
            text = text.replace(form, REDACTED)
    return text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    tap = _LogTap()
    item.stash[_taps] = tap
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    levels = [logger.level for logger in loggers]
    root.addHandler(tap)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    _tally.tests += 1
    try:
        yield
    finally:
        root.removeHandler(tap)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    when = report.when
    streams = {title.removeprefix("Captured "): content for title, content in report.sections
               if title.endswith(f" {when}")}  # earlier phases were scanned in their own reports
    tap = item.stash.get(_taps, None)
    if tap is not None:
        streams[f"log records {when} (root logger, DEBUG and up)"] = tap.take()
    if report.longrepr is not None:
        streams[f"failure report ({when})"] = str(report.longrepr)
    if report.user_properties:
        streams["user properties"] = repr(report.user_properties)
    _tally.reports += 1
    _tally.streams += len(streams)
    leaks = [f"{known_secrets.describe(secret)} in the {stream}"
             for stream, text in streams.items() for secret in find(text)]
    if not leaks and not any(find(content) for _, content in report.sections):
        return
    report.sections = [(title, redact(content)) for title, content in report.sections]
    if report.longrepr is not None:
        report.longrepr = redact(str(report.longrepr))
    if leaks:
        _tally.leaks.extend(f"{report.nodeid}: {leak}" for leak in leaks)
        message = "secret scan: " + "; ".join(leaks) + f" (shown above as {REDACTED})"
        report.longrepr = f"{report.longrepr}\n\n{message}" if report.longrepr else message
        report.outcome = "failed"
        if hasattr(report, "wasxfail"):
            del report.wasxfail  # a leak is a failure even in a test expected to fail


@pytest.hookimpl(tryfirst=True)
def pytest_warning_recorded(warning_message, when: str, nodeid: str, location) -> None:
    text = str(warning_message.message)
    found = find(text)
    if found:
        # Replaced before the warnings summary prints it; the run fails at the end.
        warning_message.message = UserWarning(redact(text))
        _tally.leaks.extend(f"{nodeid or when}: {known_secrets.describe(secret)} in a warning" for secret in found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _tally.leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _tally.tests:
        return
    issued = sum(1 for secret in known_secrets.all() if known_secrets.describe(secret).endswith("STS front"))
    verdict = f"{len(_tally.leaks)} LEAK(S)" if _tally.leaks else "no leak"
    terminalreporter.write_line(
        f"secret scan: {_tally.tests} tests, {_tally.reports} reports, {_tally.streams} streams checked for "
        f"{len(known_secrets.all())} secrets ({issued} issued by the STS front): {verdict}")
    for leak in _tally.leaks:
        terminalreporter.write_line(f"  secret leak: {leak}", red=True)
