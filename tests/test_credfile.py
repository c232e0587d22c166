"""The credentials-file editor: golden before/after files, and each refusal with its exact line.

Every golden case also runs with CRLF line endings and without a final
newline, derived from the LF files, so those stay byte-exact too.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ConfigParseError

from credd import credfile
from credd.errors import CredentialsFileError
from credd.model import AccessKey, Secret
from tests.conftest import SCRUBBED_PREFIXES, require_tool
from tests.fixtures_credfile import botocore_read, make_credentials

GOLDEN = Path(__file__).parent / "golden" / "credfile"
OLD_TOKEN = "ASIAOLD00000000000001"


@dataclass(frozen=True)
class Case:
    write: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    import_from: str | None = None

    def apply(self, text: str, original: str | None = None) -> str:
        """The change on `text`; an import removes the key read from `original` (default: `text`)."""
        if self.import_from:
            key = credfile.read_long_term_key(original or text, self.import_from)
            return credfile.remove_long_term_key(text, self.import_from, key)
        write = {name: make_credentials(n) for n, name in enumerate(self.write, 1)}
        return credfile.update(text, write, self.remove)


CASES = {
    # owned section updated in place (stale aws_security_token dropped), a plain section taken
    # over, a new one appended; an owned section removed, a foreign one left alone
    "realistic": Case(write=("dev-session", "prod-admin", "new-profile"), remove=("retired", "saml")),
    "empty": Case(write=("new-profile",)),
    "comments-only": Case(write=("new-profile",)),
    # added keys take the indentation that keeps them options and the next header a header
    "indented": Case(write=("odd", "bare")),
    # a token with continuation lines is replaced whole; the nested s3 block stays
    "multiline": Case(write=("owned",)),
    "unicode": Case(write=("ünïcode-prøfile", "plain", "ñew")),
    # only owned sections go, each with the blank lines after it (at the end: the one before it)
    "remove": Case(remove=("first-owned", "keep", "foreign", "last-owned")),
    "import-section": Case(import_from="personal"),
    "import-keys": Case(import_from="personal"),
}


def _variants(before: str, after: str):
    yield "lf", before, after
    if "\n" in before:
        yield "crlf", before.replace("\n", "\r\n"), after.replace("\n", "\r\n")
    if before.endswith("\n") and not before.endswith("\n\n") and not after.endswith("\n\n"):
        yield "no-final-newline", before[:-1], after[:-1]


def _golden_params():
    for name, case in CASES.items():
        before = (GOLDEN / f"{name}.before.ini").read_text(encoding="utf-8")
        after = (GOLDEN / f"{name}.after.ini").read_text(encoding="utf-8")
        for variant, variant_before, variant_after in _variants(before, after):
            yield pytest.param(case, variant_before, variant_after, id=f"{name}-{variant}")


@pytest.mark.parametrize("case, before, after", list(_golden_params()))
def test_golden(case: Case, before: str, after: str) -> None:
    assert case.apply(before) == after
    assert case.apply(after, original=before) == after  # applying it again changes nothing
    assert credfile.read_profiles(after) == botocore_read(after)


def test_golden_files_are_what_botocore_reads() -> None:
    """The expected files themselves: the owned sections read back with the new values."""
    after = (GOLDEN / "realistic.after.ini").read_text(encoding="utf-8")
    read = botocore_read(after)
    assert read["dev-session"]["aws_session_token"] == make_credentials(1).session_token.reveal()
    assert "aws_security_token" not in read["dev-session"]
    assert read["dev-session"]["region"] == "us-east-1    # botocore keeps this comment in the value"
    assert read["new-profile"]["aws_access_key_id"] == make_credentials(3).access_key_id
    assert "retired" not in read and "saml" in read


def test_the_real_aws_cli_reads_what_credd_wrote(tmp_path: Path) -> None:
    aws = require_tool("aws")
    before = (GOLDEN / "realistic.before.ini").read_text(encoding="utf-8").replace("\n", "\r\n")
    path = tmp_path / "credentials"
    path.write_bytes(CASES["realistic"].apply(before).encode())
    env = {name: value for name, value in os.environ.items() if not name.startswith(SCRUBBED_PREFIXES)}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(path), AWS_CONFIG_FILE=str(tmp_path / "no-config"), HOME=str(tmp_path))
    for profile, n in (("dev-session", 1), ("new-profile", 3)):
        for key in (credfile.ACCESS_KEY_ID, credfile.SESSION_TOKEN):
            got = subprocess.run([aws, "configure", "get", key, "--profile", profile], env=env, capture_output=True,
                                 text=True, timeout=60)
            assert got.returncode == 0, got.stderr
            assert got.stdout.strip() == credfile.credential_values(make_credentials(n))[key]


def test_appending_then_removing_gives_back_the_file() -> None:
    for before in ("", "\n", "[a]\nk = v", "[a]\r\nk = v\r\n\r\n\r\n", "# only a comment"):
        written = credfile.update(before, {"new": make_credentials(), "newer": make_credentials(1)})
        assert credfile.update(written, {}, remove=("new", "newer")) == before


def test_uses_the_line_ending_the_file_uses() -> None:
    text = credfile.update("[a]\r\nk = v\r\n", {"a": make_credentials(), "b": make_credentials()})
    assert "\n" not in text.replace("\r\n", "")


def test_nothing_to_change_returns_the_same_text() -> None:
    text = credfile.update("# c\n[p]\nregion = x", {"p": make_credentials()})
    assert credfile.update(text, {"p": make_credentials()}) == text


# Ownership ------------------------------------------------------------------

LONG_TERM = "# mine\n[prod]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = secret\n"


def test_refuses_to_overwrite_a_long_term_key() -> None:
    with pytest.raises(CredentialsFileError) as caught:
        credfile.update(LONG_TERM, {"prod": make_credentials()}, path="creds")
    assert caught.value.line == 2
    assert "credd keys import SOURCE --from-profile prod" in str(caught.value)
    assert str(caught.value).startswith("creds:2: section [prod] holds a long-term access key")


def test_overwrites_its_own_section_even_without_a_session_token() -> None:
    text = LONG_TERM.replace("secret\n", "secret\nx_credd_expiration = 2020-01-01T00:00:00Z\n")
    assert botocore_read(credfile.update(text, {"prod": make_credentials()}))["prod"]["aws_access_key_id"] == \
        make_credentials().access_key_id


def test_takes_over_temporary_credentials_of_another_tool() -> None:
    text = "[p]\naws_access_key_id = ASIAX\naws_secret_access_key = s\naws_security_token = t\nregion = x\n"
    read = botocore_read(credfile.update(text, {"p": make_credentials()}))["p"]
    assert read == {**credfile.credential_values(make_credentials()), "region": "x"}


def test_removes_only_sections_it_owns() -> None:
    text = "[a]\naws_access_key_id = ASIAX\naws_secret_access_key = s\naws_session_token = t\n"
    assert credfile.update(text, {}, remove=("a", "missing")) == text


def test_refuses_a_profile_named_default() -> None:
    with pytest.raises(CredentialsFileError, match=r"cannot be named DEFAULT"):
        credfile.update("", {"DEFAULT": make_credentials()})


def test_refuses_when_default_sets_a_security_token() -> None:
    """botocore would hand [DEFAULT]'s aws_security_token to every profile, ahead of the one credd writes."""
    text = "[DEFAULT]\naws_security_token = stale\n[p]\nregion = x\n"
    with pytest.raises(CredentialsFileError) as caught:
        credfile.update(text, {"p": make_credentials()})
    assert caught.value.line == 2
    assert "remove it from [DEFAULT]" in str(caught.value)


def test_refuses_a_removal_that_would_change_how_the_next_section_is_read() -> None:
    # "  [b]" is a header after the indented key of [owned], but would continue "x = 1" without it.
    text = "[a]\nx = 1\n[owned]\n  x_credd_expiration = 2020-01-01T00:00:00Z\n  [b]\nk = v\n"
    with pytest.raises(CredentialsFileError) as caught:
        credfile.update(text, {}, remove=("owned",))
    assert "indented" in str(caught.value)


def test_bad_values_never_show_in_the_error() -> None:
    bad = make_credentials()
    bad = type(bad)(bad.access_key_id, Secret("line\nbreak-secret"), bad.session_token, bad.expiration)
    with pytest.raises(ValueError) as caught:
        credfile.update("", {"p": bad})
    assert "break-secret" not in str(caught.value)


def test_a_profile_cannot_be_written_and_removed_at_once() -> None:
    with pytest.raises(ValueError):
        credfile.update("", {"p": make_credentials()}, remove=("p",))


# Files botocore refuses --------------------------------------------------------

BAD_FILES = {
    "duplicate section": ("[a]\nk = 1\n\n[b]\n[a]\nj = 2\n", 5, "section [a] appears a second time (first at line 1)"),
    "duplicate key, other case": ("[a]\nregion = x\nREGION = y\n", 3, "key region appears a second time"),
    "duplicate key in two DEFAULTs": ("[DEFAULT]\nk = 1\n[a]\n[DEFAULT]\nk = 2\n", 5,
                                      "appears a second time in [DEFAULT]"),
    "byte order mark": ("\ufeff[a]\nk = v\n", 1, "byte order mark"),
    "garbage line": ("[a]\nk = v\nthis is not ini\n", 3, "neither a [section] header"),
    "key with no name": ("[a]\n= value\n", 2, "neither a [section] header"),
    "empty brackets": ("[a]\n[]\n", 2, "neither a [section] header"),
    "key before any section": ("# c\n\nk = v\n[a]\n", 3, "before the first [section] header"),
    "nested block line with no =": ("[a]\ns3 =\n  addressing_style = path\n  oops\n", 4, "has no `=`"),
    "not UTF-8": ("[a]\nk = v\nk2 = caf\udce9\n", 3, "not valid UTF-8"),
}


@pytest.mark.parametrize("text, line, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_names_the_line_botocore_refuses(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigParseError):
        botocore_read(text)  # the premise: botocore really refuses it
    with pytest.raises(CredentialsFileError) as caught:
        credfile.update(text, {"a": make_credentials()}, path="creds")
    assert (caught.value.path, caught.value.line) == ("creds", line)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"creds:{line}: ")


def test_reads_what_botocore_reads_from_odd_but_valid_files() -> None:
    text = ("[DEFAULT]\nregion = us-east-1\n[DEFAULT]\noutput = json\n"  # a repeated [DEFAULT] is allowed
            "[a]\nk: v ; not a comment\n  continued\n\n# c\n  more\n[ spaced ]\nx=1\n[b]\n  [not-a-header]\n"
            "s3 =\n\n  x = 1\n")
    assert credfile.read_profiles(text) == botocore_read(text)
    assert credfile.read_profiles(text)["a"]["k"] == "v ; not a comment\ncontinued\n\nmore"


# keys import helpers -----------------------------------------------------------


def test_read_long_term_key() -> None:
    key = credfile.read_long_term_key(LONG_TERM, "prod")
    assert key == AccessKey("AKIAIOSFODNN7EXAMPLE", Secret("secret"))


@pytest.mark.parametrize("text, section, message", [
    (LONG_TERM, "nope", "there is no section [nope] (sections: [prod])"),
    ("[t]\naws_access_key_id = ASIAX\naws_secret_access_key = s\naws_session_token = t\n", "t", "temporary"),
    ("[p]\nregion = x\n", "p", "has no aws_access_key_id"),
    ("[p]\naws_access_key_id = AKIAX\n", "p", "has no aws_secret_access_key"),
], ids=["no such section", "temporary credentials", "no key id", "no secret"])
def test_read_long_term_key_refuses(text: str, section: str, message: str) -> None:
    with pytest.raises(CredentialsFileError) as caught:
        credfile.read_long_term_key(text, section)
    assert message in str(caught.value)


def test_remove_long_term_key_refuses_a_key_changed_meanwhile() -> None:
    key = credfile.read_long_term_key(LONG_TERM, "prod")
    changed = LONG_TERM.replace("= secret", "= another")
    with pytest.raises(CredentialsFileError, match="changed after credd read it"):
        credfile.remove_long_term_key(changed, "prod", key)


def test_remove_long_term_key_again_changes_nothing() -> None:
    key = credfile.read_long_term_key(LONG_TERM, "prod")
    once = credfile.remove_long_term_key(LONG_TERM, "prod", key)
    assert once == "# mine\n"
    assert credfile.remove_long_term_key(once, "prod", key) == once


# set_keys: the same editor for ~/.aws/config ------------------------------------------------------------

AWS_CONFIG = ("# by hand\r\n[default]\r\nregion = eu-west-1\r\naws_security_token = kept\r\n\r\n"
              "; another tool\r\n[profile x]\r\n  output = json")
HOOK = "/opt/credd/bin/credd process p"


def test_set_keys_adds_to_a_section_and_appends_a_new_one_keeping_every_other_byte() -> None:
    into_default = credfile.set_keys(AWS_CONFIG, "default", {"credential_process": HOOK}, "config")
    assert into_default == AWS_CONFIG.replace("= kept\r\n", f"= kept\r\ncredential_process = {HOOK}\r\n")
    appended = credfile.set_keys(into_default, "profile p", {"credential_process": HOOK})
    assert appended == into_default + f"\r\n\r\n[profile p]\r\ncredential_process = {HOOK}"
    read = botocore_read(appended)
    assert read["default"] == {"region": "eu-west-1", "aws_security_token": "kept", "credential_process": HOOK}
    assert read["profile p"] == {"credential_process": HOOK} and read["profile x"] == {"output": "json"}


def test_set_keys_indents_like_the_section_replaces_in_place_and_is_idempotent() -> None:
    indented = credfile.set_keys(AWS_CONFIG, "profile x", {"region": "r"})
    assert indented == AWS_CONFIG + "\r\n  region = r"
    replaced = credfile.set_keys(indented, "profile x", {"output": "text"})
    assert replaced == indented.replace("output = json", "output = text")
    assert credfile.set_keys(replaced, "profile x", {"output": "text"}) == replaced
    assert credfile.set_keys("", "s", {"k": "v"}) == "[s]\nk = v\n"


@pytest.mark.parametrize("section, values", [
    ("DEFAULT", {"k": "v"}),
    ("s", {"Region": "v"}),
    ("s", {"k = x": "v"}),
    ("s", {"k": "line\nbreak-secret"}),
    ("s", {"k": " padded"}),
    ("a\nb", {"k": "v"}),
], ids=["DEFAULT", "upper-case key", "key with =", "newline in value", "padded value", "newline in section"])
def test_set_keys_refuses_what_an_ini_line_cannot_hold(section: str, values: dict[str, str]) -> None:
    with pytest.raises(ValueError) as caught:
        credfile.set_keys(AWS_CONFIG, section, values)
    assert "break-secret" not in str(caught.value)


def test_set_keys_refuses_a_file_botocore_cannot_read() -> None:
    with pytest.raises(CredentialsFileError, match=r"^config:3: section \[a\] appears a second time"):
        credfile.set_keys("[a]\n[b]\n[a]\n", "b", {"k": "v"}, "config")


def test_remove_long_term_keys_at_once_gives_what_one_at_a_time_gives() -> None:
    key = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\r\naws_secret_access_key = secret\r\n"
    text = (f"# mine\r\n[a]\r\n{key}\r\n[b]\r\nregion = eu-west-1\r\n{key}[c]\r\n{key}\r\n[keep]\r\n{key}\r\n"
            f"[d]\r\n{key}\r\n[e]\r\n{key}")
    keys = {name: credfile.read_long_term_key(text, name) for name in ("e", "a", "d", "b", "c")}
    one_at_a_time = text
    for name, key_of in keys.items():
        one_at_a_time = credfile.remove_long_term_key(one_at_a_time, name, key_of)
    assert credfile.remove_long_term_keys(text, keys) == one_at_a_time
    assert one_at_a_time == f"# mine\r\n[b]\r\nregion = eu-west-1\r\n[keep]\r\n{key}"


def test_remove_long_term_keys_reads_the_file_once_however_many_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    """An import moves a key per source: one edit each re-read the whole file, quadratic in the sources."""
    parses = []
    real_parse = credfile.parse
    monkeypatch.setattr(credfile, "parse", lambda *args: parses.append(1) or real_parse(*args))
    for count in (4, 40):
        text = "".join(f"[s{n}]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = secret\n"
                       for n in range(count))
        keys = {f"s{n}": AccessKey("AKIAIOSFODNN7EXAMPLE", Secret("secret")) for n in range(count)}
        parses.clear()
        assert credfile.remove_long_term_keys(text, keys) == ""
        assert len(parses) == 2  # the edit, and its proof
