"""The credentials-file editor on hostile bytes: invalid UTF-8, NUL, lone CR and CRLF mixes, a BOM,
very long lines, `[` without `]`, duplicate sections and keys, [DEFAULT], continuation lines, and
sections named like credd's profiles that hold long-term keys.

`credfile.update` either returns text that botocore reads back with the written credentials and in
which no byte changed outside credd's keys of the written sections, or raises CredentialsFileError
with a message that quotes nothing of the file (any line may hold a secret). Never another exception.
Through `atomicfile.update_file`, a refused file keeps every byte.

The checks here do not use credd's parser: every line that is not one of credd's keys (by its text, and
configparser's rule for continuation lines) must be in the new file in order, byte for byte, and botocore
(with configparser under it) says what the file means before and after.
"""

from __future__ import annotations

import configparser
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ConfigParseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credd import atomicfile, credfile
from credd.errors import CredentialsFileError
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_credfile import botocore_read, make_credentials

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TARGETS = ["owned", "alice-session", "prod admin"]  # the profiles credd writes
CREDD_KEYS = (*credfile.MANAGED, credfile.SECURITY_TOKEN)
TOKEN_IN_FILE = "FwoGZXIvYXdzEXAMPLETOKENINFILE"
SECRETS = (TEST_SECRET_KEY, TEST_TOTP_SEED, TOKEN_IN_FILE)
SECTION = configparser.RawConfigParser.SECTCRE
CREDD_KEY_LINE = re.compile(rf"({'|'.join(CREDD_KEYS)})\s*[=:]", re.IGNORECASE)

HEADERS = ["[owned]", "[alice-session]", "[prod admin]", "[DEFAULT]", "[default]", "[other]", "[ owned ]", "[Owned]",
           "[", "[owned", "]", "[]", "[[owned]]", "[owned] ; note", "[owned]]", "[de\x0bfault]", "[\x1b[31mred]"]
KEYS = [f"aws_access_key_id = {TEST_KEY_ID}", f"aws_secret_access_key = {TEST_SECRET_KEY}",
        f"aws_session_token = {TOKEN_IN_FILE}", f"aws_security_token = {TOKEN_IN_FILE}",
        "x_credd_expiration = 2030-01-01T00:00:00Z", f"AWS_SECRET_ACCESS_KEY:{TEST_SECRET_KEY}",
        "region = us-east-1", "output=json", "s3 =", "addressing_style = path", "cli_pager", "= value", "key =",
        f"{TEST_SECRET_KEY}", f"{TEST_SECRET_KEY}=", f"{TEST_TOTP_SEED} = x", "totp = " + TEST_TOTP_SEED]
OTHER = ["# comment", "; comment", f"# {TEST_SECRET_KEY}", "", " ", "\t", "v" * 20000, "[owned]" + "x" * 5000,
         "\x00", "nul\x00inside = x", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "é = ü", "🔑 = 🔒", "\ufeff[owned]"]
INDENTS = ["", "", "", " ", "  ", "\t", "\x0c", "\xa0"]
EOLS = ["\n", "\n", "\r\n", "\r", ""]
RAW = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x80abc", b"\xf4\x90\x80\x80", b"\xc0\xaf"]


@st.composite
def hostile_files(draw) -> bytes:
    """Lines of real pieces with odd indents and endings, then a few raw bytes put in anywhere."""
    body = st.one_of(st.sampled_from(HEADERS + KEYS + OTHER), st.text(max_size=12).map(lambda text: f"[{text}]"))
    lines = draw(st.lists(st.tuples(st.sampled_from(INDENTS), body, st.sampled_from(EOLS)), max_size=24))
    data = bytearray("".join(indent + body + eol for indent, body, eol in lines).encode())
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.one_of(st.sampled_from(RAW), st.binary(max_size=4)))
    if draw(st.integers(0, 9)) == 0:
        data[:0] = b"\xef\xbb\xbf"
    return bytes(data)


HOSTILE_BYTES = st.one_of(hostile_files(), st.binary(max_size=200))


def tokens(text: str) -> list[str]:
    """The text cut after every CR and every LF: a CRLF is two tokens, so joining two lines (`A\\r` then
    `\\n`) cannot hide a change, and every byte is in exactly one token."""
    return re.findall(r"[^\r\n]*[\r\n]|[^\r\n]+$", text)


def content(token: str) -> str:
    return token.rstrip("\r\n")


def own_keys(text: str) -> dict[str, dict[str, str]]:
    """Each section's own keys (without what [DEFAULT] gives it), and [DEFAULT]'s, as configparser reads them."""
    parser = configparser.RawConfigParser()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "credentials"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        parser.read(path, encoding="utf-8")
    own = {name: dict(parser._sections[name]) for name in parser.sections()}  # _sections: no DEFAULT merged
    return {**own, "DEFAULT": dict(parser.defaults())}


def defaults_of(text: str) -> dict[str, str]:
    """What [DEFAULT] gives a section credd adds: botocore's read of such a section added at the end."""
    probe = "".join(f"{key} = x\n" for key in CREDD_KEYS)
    read = botocore_read(f"{text}\n[credd-fuzz-probe]\n{probe}")["credd-fuzz-probe"]
    return {key: value for key, value in read.items() if key not in CREDD_KEYS}


def assert_quotes_nothing(error: CredentialsFileError) -> None:
    message = str(error)
    assert len(message.splitlines()) == 1 and len(message) < 600, message
    for secret in SECRETS:
        assert secret.lower() not in message.lower(), f"the message quotes the file: {message}"


def assert_only_credd_keys_changed(before: str, after: str) -> None:
    """Every line of the old file but credd's keys (with their continuation lines) is in the new one, in
    order, with its line ending; what else the new one has is credd's keys, headers of the sections it
    added, and blank lines. (Which section a key is in, botocore's reading checks.)"""
    headers = {f"[{name}]" for name in TARGETS}

    def credds(lines: list[str]) -> set[int]:
        continued = continuation_lines_of_credd_keys(lines)
        return {i for i, line in enumerate(lines)
                if CREDD_KEY_LINE.match(line.strip()) or line.strip() in headers or i in continued}

    old, new = kept(tokens(before), credds), kept(tokens(after), credds)
    at = 0
    for index, line in old:
        while at < len(new) and content(new[at][1]) != content(line):
            assert not new[at][1].strip(), f"credd added or changed line {new[at][1][:80]!r}"
            at += 1  # a blank line credd added before a new section
        assert at < len(new), f"credd dropped line {index + 1}: {line[:80]!r}"
        if line.endswith(("\n", "\r")):  # an open last line may gain an ending
            assert new[at][1] == line, f"line {index + 1} changed its ending"
        at += 1
    assert all(not line.strip() for _, line in new[at:]), f"credd added {new[at:][:3]}"


def kept(lines: list[str], credds: Callable[[list[str]], set[int]]) -> list[tuple[int, str]]:
    """(index, line) of the lines `credds` does not claim for credd; the LF of a claimed CRLF line goes too."""
    claimed = credds(lines)
    for index, line in enumerate(lines):
        if line == "\n" and index - 1 in claimed and lines[index - 1].endswith("\r"):
            claimed.add(index)
    return [(index, line) for index, line in enumerate(lines) if index not in claimed]


def continuation_lines_of_credd_keys(lines: list[str]) -> set[int]:
    """Lines configparser reads as more of a credd key's value: indented deeper than the key's line, with
    only comments and blank lines between (configparser's rule, written out again)."""
    found: set[int] = set()
    credd_key, level = None, 0  # None: no key to continue (before any, or after a header)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        indent = len(line) - len(line.lstrip())
        if credd_key is not None and indent > level:
            if credd_key:
                found.add(index)
            continue
        level = indent
        credd_key = None if SECTION.match(stripped) else bool(CREDD_KEY_LINE.match(stripped))
    return found


def check_update(data: bytes, targets: list[str]) -> str | None:
    """The property for one file and one set of profiles to write; the new text, or None if refused."""
    before = data.decode("utf-8", "surrogateescape")  # as atomicfile.read_text hands it over
    write = {name: make_credentials(n) for n, name in enumerate(targets, 1)}
    try:
        after = credfile.update(before, write)
    except CredentialsFileError as e:
        assert_quotes_nothing(e)
        return None
    # What credd accepts, botocore reads, and credd kept its rules.
    read_before = botocore_read(before)
    own = own_keys(before)
    assert credfile.SECURITY_TOKEN not in own["DEFAULT"], "written under a [DEFAULT] aws_security_token"
    defaults = defaults_of(before) if write.keys() - read_before.keys() else {}
    for name in write:
        mine = own.get(name, {})
        long_term = credfile.ACCESS_KEY_ID in mine and not {credfile.SESSION_TOKEN, credfile.SECURITY_TOKEN} & set(mine)
        assert not long_term or credfile.EXPIRATION in mine, f"overwrote the long-term key in [{name}]"
    # Bytes: only credd's keys changed.
    assert_only_credd_keys_changed(before, after)
    # Meaning: botocore reads the new credentials, and every other section as before.
    read_after = botocore_read(after)
    assert set(read_after) == set(read_before) | set(write)
    for name in read_before.keys() - write.keys():
        assert read_after[name] == read_before[name]
    for name, credentials in write.items():
        others = {k: v for k, v in read_before.get(name, defaults).items() if k not in CREDD_KEYS}
        assert read_after[name] == {**others, **credfile.credential_values(credentials)}
    assert credfile.update(after, write) == after
    if not set(write) & set(read_before):  # only new sections: taking them out gives back the file
        assert credfile.update(after, {}, remove=list(write)) == before
    return after


TARGET_LISTS = st.lists(st.sampled_from(TARGETS), min_size=1, unique=True)


@SETTINGS
@given(data=HOSTILE_BYTES, targets=TARGET_LISTS)
def test_update_on_hostile_bytes_changes_only_credd_keys_or_refuses(data: bytes, targets: list[str]) -> None:
    check_update(data, targets)


@settings(SETTINGS, max_examples=400)
@given(data=HOSTILE_BYTES)
def test_hostile_bytes_are_read_as_botocore_reads_them_or_refused(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    try:
        expected = botocore_read(text)
    except ConfigParseError:  # botocore refuses it: so must credd
        with pytest.raises(CredentialsFileError) as caught:
            credfile.read_profiles(text)
        assert_quotes_nothing(caught.value)
        return
    try:
        got = credfile.read_profiles(text)
    except CredentialsFileError as e:  # only a BOM, which botocore takes as part of the first line
        assert text.startswith("\ufeff"), str(e)
        return
    assert got == expected


@settings(SETTINGS, max_examples=200)
@given(data=HOSTILE_BYTES, targets=TARGET_LISTS)
def test_update_file_keeps_every_byte_of_a_refused_file(scratch: Path, data: bytes, targets: list[str]) -> None:
    path = scratch / "credentials"
    path.write_bytes(data)
    write = {name: make_credentials(n) for n, name in enumerate(targets, 1)}
    try:
        changed = atomicfile.update_file(path, lambda text: credfile.update(text, write, path=str(path)))
    except CredentialsFileError as e:
        assert path.read_bytes() == data
        assert_quotes_nothing(e)
        assert str(e).startswith(f"{path}")
    else:
        expected = credfile.update(data.decode("utf-8", "surrogateescape"), write)
        assert path.read_bytes() == expected.encode("utf-8", "surrogateescape")
        assert changed == (expected.encode("utf-8", "surrogateescape") != data)
    assert sorted(os.listdir(scratch)) in (["credentials"], [".credentials.lock", "credentials"])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-credfile")


# Plain examples -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    f"[owned]\n{TEST_SECRET_KEY} = a\n{TEST_SECRET_KEY} = b\n".encode(),
    f"[owned]\n{TEST_TOTP_SEED} = a\n{TEST_TOTP_SEED.lower()} = b\n".encode(),
    f"[owned]\ns3 =\n  {TEST_SECRET_KEY}\n".encode(),
    f"[owned]\naws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n".encode(),
    f"{TEST_SECRET_KEY}\n[owned]\n".encode(),
    f"[owned]\n{TEST_SECRET_KEY}\n".encode(),
    b"\xef\xbb\xbf[owned]\n",
    f"[owned]\nk = {TEST_SECRET_KEY}\udcff\n".encode("utf-8", "surrogateescape"),
    b"[de\x0bfault]\n[de\x0bfault]\n",  # found by atheris: the name split the message in two lines
    b"[\x1b[31mred]\nk = 1\nK = 2\n",  # a terminal escape in the message
    b"[" + b"x" * 5000 + b"]\n[" + b"x" * 5000 + b"]\n",
])
def test_refusals_quote_nothing_of_the_file(data: bytes) -> None:
    assert check_update(data, ["owned"]) is None


@pytest.mark.parametrize("data", [
    b"[other]\r\nregion = x\rs3 =\n  a = b\r\n\r\n[owned]\r\nx_credd_expiration = 1\r\naws_session_token = t\n  more",
    b"[DEFAULT]\nregion = x\n[DEFAULT]\noutput = json\n[other]\n",
    b"[owned]\nx_credd_expiration = 1\naws_access_key_id = A\n\x00\n",
    b"# \xff not utf-8 in a comment is still not utf-8\n",
    b"[other]\nv = " + b"v" * 20000,
    # Found by atheris: the new value is the first line of the old one, so only the continuation goes.
    b"[owned]\naws_secret_access_key = test/secret+00000001\n = path\nx_credd_expiration = 1\n",
])
def test_hostile_but_readable_files(data: bytes) -> None:
    after = check_update(data, TARGETS)
    if after is not None:
        assert botocore_read(after)["owned"]["aws_access_key_id"].startswith("ASIATEST")


def test_a_section_added_after_a_lone_cr_comes_out_again_byte_for_byte() -> None:
    """The blank line before an added section was an LF, which after a last line ending in a lone CR made
    a CRLF instead of a blank line: removing the section then left an LF that was never in the file."""
    before = "\x0b\n[alice-session]\r"
    after = credfile.update(before, {"owned": make_credentials(1)})
    assert after.startswith("\x0b\n[alice-session]\r\r[owned]\n")
    assert set(botocore_read(after)) == {"alice-session", "owned"}
    assert credfile.update(after, {}, remove=["owned"]) == before
