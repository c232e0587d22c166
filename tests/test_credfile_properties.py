"""Properties of the editor on random files built from real-world pieces, with botocore as the judge.

The generator knows what each line of a file is (header, key, continuation,
comment, blank; which section; which key), so the checks need no parser of
their own: botocore reads the results, and the generator's notes say which
bytes credd may touch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credd import credfile
from credd.errors import CredentialsFileError
from tests.fixtures_credfile import botocore_read, make_credentials

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OWNED, FOREIGN, PLAIN, LONG_TERM = "owned", "foreign", "plain", "long-term"
CREDD_KEYS = (*credfile.MANAGED, credfile.SECURITY_TOKEN)  # the keys credd sets or drops in a section it writes
NAMES = ["default", "dev", "prod-admin", "team.ops", "ünïcode-prøfile", "with space", "a_b@c+d=e,f", "Prod", "日本",
         "profile x"]
EXTRA_KEYS = ["region", "output", "role_arn", "source_profile", "mfa_serial", "x_security_token_expires",
              "cli_pager", "Custom_Key", "s3"]
REAL_VALUES = ["us-east-1", "json", "arn:aws:iam::123456789012:role/Admin", "value # not a comment", "a=b:c",
               "[bracketed]", "☃ snow ❄", "  padded  ", ""]
SEPARATORS = [" = ", "=", " =", "= ", " : ", ":", "\t=\t", "  =  "]
INDENTS = ["", " ", "  ", "\t"]
BLANKS = ["", " ", "\t", "  \t "]
# Characters that split lines for str.splitlines but not for a file read, and other oddities.
TRICKY = ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\ufeff", "\x00", "#", ";", "[", "]", "=", ":", " ", "\t", "é",
          "🔑"]
CHARS = st.one_of(st.sampled_from(TRICKY), st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"))
TEXT = st.text(CHARS, max_size=24)


@dataclass
class Line:
    content: str
    part: str  # header, key, cont, comment, blank
    section: str | None = None
    key: str | None = None  # lower-cased, for key and cont lines


@dataclass
class Built:
    """A generated file and what the generator knows about each of its lines."""

    lines: list[Line]
    eols: list[str]
    final_newline: bool
    kinds: dict[str, str] = field(default_factory=dict)  # section -> OWNED, FOREIGN, PLAIN, LONG_TERM
    defaults: dict[str, str] = field(default_factory=dict)

    def raw_lines(self) -> list[str]:
        raw = [line.content + eol for line, eol in zip(self.lines, self.eols, strict=True)]
        if raw and not self.final_newline:
            raw[-1] = self.lines[-1].content  # "" if that line was blank: then there is no such line
        return raw

    @property
    def text(self) -> str:
        return "".join(self.raw_lines())


# Strategies -------------------------------------------------------------------
# Built once: a strategy made inside every draw costs more than the test itself.

VALUE = st.one_of(TEXT, st.sampled_from(REAL_VALUES), st.integers(1000, 12000).map(lambda n: "v" * n))
INDENT, SEPARATOR, BLANK = st.sampled_from(INDENTS), st.sampled_from(SEPARATORS), st.sampled_from(BLANKS)
DEEPER = st.sampled_from(["  ", "\t", "    "])
COMMENT = st.builds(lambda indent, prefix, text: Line(indent + prefix + text, "comment"),
                    INDENT, st.sampled_from("#;"), TEXT)
COMMENT_OR_BLANK = st.one_of(COMMENT, BLANK.map(lambda text: Line(text, "blank")))
SOME_COMMENTS_OR_BLANKS = st.lists(COMMENT_OR_BLANK, max_size=2)
CONTINUATIONS = st.lists(st.tuples(st.lists(COMMENT, max_size=1),
                                   TEXT.filter(lambda text: text.strip() and not text.strip().startswith(("#", ";")))),
                         max_size=2)
NESTED = st.lists(st.tuples(st.sampled_from(["addressing_style", "max_concurrent_requests"]),
                            TEXT.map(lambda text: "".join(text.splitlines()))),  # botocore splits it with splitlines
                  min_size=1, max_size=3)
EXTRAS = st.lists(st.sampled_from(EXTRA_KEYS), unique_by=str.lower, max_size=3)
SECTION_NAMES = st.lists(st.one_of(st.sampled_from(NAMES), st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)),
                         unique=True, max_size=6)
KEYS_BY_KIND = {  # required keys, and a strategy for optional ones
    OWNED: (["x_credd_expiration"], st.lists(st.sampled_from(["aws_access_key_id", "aws_secret_access_key",
                                                               "aws_session_token", "aws_security_token"]),
                                              unique=True)),
    FOREIGN: (["aws_access_key_id", "aws_secret_access_key", "aws_session_token"], st.just([])),
    PLAIN: ([], st.just([])),
    LONG_TERM: (["aws_access_key_id", "aws_secret_access_key"], st.just([])),
}


def key_lines(draw, section: str, name: str, indent: str) -> list[Line]:
    """One key: its line, maybe continuation lines (with comments between), or a nested block."""
    spelled = draw(st.sampled_from([name, name.upper()]))
    deeper = indent + draw(DEEPER)
    value = "" if name == "s3" else draw(VALUE)
    lines = [Line(f"{indent}{spelled}{draw(SEPARATOR)}{value}", "key", section, name)]
    if name == "s3":
        return lines + [Line(f"{deeper}{k} = {v}", "cont", section, name) for k, v in draw(NESTED)]
    if value.strip():
        for comments, text in draw(CONTINUATIONS):
            lines += [*comments, Line(deeper + text, "cont", section, name)]
    return lines


def section_lines(draw, name: str, kind: str, header_indent: str) -> list[Line]:
    required, optional = KEYS_BY_KIND[kind]
    names = draw(st.permutations(required + draw(optional) + draw(EXTRAS)))
    indent = draw(INDENT)
    trailer = draw(st.sampled_from(["", "  # note", " ; note"]))
    lines = [Line(f"{header_indent}[{name}]{trailer}", "header", name)]
    for key in names:
        lines += draw(SOME_COMMENTS_OR_BLANKS)
        lines += key_lines(draw, name, key.lower(), indent)
    return lines + draw(SOME_COMMENTS_OR_BLANKS)


@st.composite
def files(draw, kinds=(OWNED, FOREIGN, PLAIN, LONG_TERM), eols=("\n", "\r\n"), indented_headers=False) -> Built:
    lines = draw(SOME_COMMENTS_OR_BLANKS)
    built = Built(lines, [], draw(st.booleans()))
    if draw(st.booleans()):
        built.defaults = {"output": "json"} if draw(st.booleans()) else {"region": "eu-west-1", "output": "text"}
        lines += [Line("[DEFAULT]", "header")] + [Line(f"{k} = {v}", "key", None, k) for k, v in built.defaults.items()]
    for name in draw(SECTION_NAMES):
        built.kinds[name] = draw(st.sampled_from(kinds))
        header_indent = draw(INDENT) if indented_headers else ""
        lines += section_lines(draw, name, built.kinds[name], header_indent)
    eol = draw(st.sampled_from((*eols, "mixed")))
    built.eols = [draw(st.sampled_from(eols)) if eol == "mixed" else eol for _ in lines]
    return built


def fresh_names(built: Built) -> st.SearchStrategy[list[str]]:
    """Names of sections the file does not have yet."""
    names = [name for name in ("new-one", "new.two", "nëw-three", "new four") if name not in built.kinds]
    return st.lists(st.sampled_from(names), unique=True, max_size=3)


# Checks -----------------------------------------------------------------------


def split(text: str) -> list[str]:
    """Lines as a file read sees them (\\n, \\r\\n or \\r), each with its ending."""
    return io.StringIO(text, newline="").readlines()


def without_final_newline(lines: list[str]) -> list[str]:
    return [*lines[:-1], lines[-1].rstrip("\r\n")] if lines else lines


def assert_line_endings_kept(built: Built, after: str) -> None:
    """A file with one kind of line ending keeps it in every line; one without a final newline stays so."""
    before = built.text
    if before and after:
        assert after.endswith(("\n", "\r")) == before.endswith(("\n", "\r"))
    if "\n" in before and len(set(built.eols)) == 1:
        assert {raw[len(raw.rstrip("\r\n")):] for raw in split(after)} <= {built.eols[0], ""}


# Properties -------------------------------------------------------------------


@SETTINGS
@given(built=files(kinds=(OWNED, FOREIGN, PLAIN, LONG_TERM), eols=("\n", "\r\n", "\r"), indented_headers=True),
       data=st.data())
def test_reads_every_file_as_botocore_does(built: Built, data: st.DataObject) -> None:
    text = data.draw(spoiled(built))
    try:
        expected = botocore_read(text)
    except Exception as e:  # noqa: BLE001  ConfigParseError, or configparser's own for what botocore lets through
        with pytest.raises(CredentialsFileError):
            credfile.read_profiles(text)
        assert type(e).__name__ == "ConfigParseError"
    else:
        assert credfile.read_profiles(text) == expected


@st.composite
def spoiled(draw, built: Built) -> str:
    """The file as built, or with one of the flaws botocore refuses (or seems to refuse) put in."""
    lines = built.raw_lines()
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    flaw = draw(st.sampled_from(["none", "garbage", "duplicate header", "duplicate key", "bom", "not utf-8",
                                 "empty key", "nested without =", "empty brackets"]))
    at = draw(st.integers(0, len(lines)))
    headers = [line for line in lines if line.lstrip().startswith("[")]
    keys = [i for i, line in enumerate(built.lines) if line.part == "key"]
    insert = {
        "garbage": "just some words\n",
        "duplicate header": draw(st.sampled_from(headers)) if headers else "[x]\n[x]\n",
        "empty key": " = value\n",
        "nested without =": "[n]\ns3 =\n  no equals sign here\n",
        "empty brackets": "[]\n",
        "not utf-8": "[u]\nk = caf\udce9\n",
    }.get(flaw)
    if insert is not None:
        lines.insert(at, insert)
    elif flaw == "duplicate key" and keys:
        index = draw(st.sampled_from(keys))
        lines.insert(index + 1, built.lines[index].content.lstrip().upper() + "\n")
    text = "".join(lines)
    return "\ufeff" + text if flaw == "bom" else text


@SETTINGS
@given(built=files(kinds=(OWNED, FOREIGN, PLAIN, LONG_TERM)), data=st.data())
def test_update_changes_only_what_credd_owns(built: Built, data: st.DataObject) -> None:
    writable = [name for name, kind in built.kinds.items() if kind != LONG_TERM]
    targets = data.draw(st.lists(st.sampled_from(writable), unique=True)) if writable else []
    created = data.draw(fresh_names(built))
    write = {name: make_credentials(n) for n, name in enumerate(targets + created, 1)}
    before = built.text

    after = credfile.update(before, write)

    # Bytes: every line credd does not own is still there, in order, byte for byte.
    kept = [raw for raw, line in zip(built.raw_lines(), built.lines, strict=True)
            if raw and not (line.section in write and line.key in CREDD_KEYS and line.part in ("key", "cont"))]
    mine = {value for credentials in write.values() for value in credfile.credential_values(credentials).values()}
    headers = {f"[{name}]" for name in created}
    out = [raw for raw in split(after)
           if not raw.rstrip("\r\n").endswith(tuple(mine)) and raw.rstrip("\r\n") not in headers]
    assert without_final_newline(out[:len(kept)]) == without_final_newline(kept)
    tail = out[len(kept):]
    assert all(not raw.strip() for raw in tail) and len(tail) <= len(created)  # one blank before each new section
    assert_line_endings_kept(built, after)

    # Meaning: botocore reads the new values in the written sections, everything else as before.
    read_before, read_after = botocore_read(before), botocore_read(after)
    assert set(read_after) == set(read_before) | set(write)
    for name in read_before.keys() - write.keys():
        assert read_after[name] == read_before[name]
    for name, credentials in write.items():
        others = {k: v for k, v in read_before.get(name, built.defaults).items() if k not in CREDD_KEYS}
        assert read_after[name] == {**others, **credfile.credential_values(credentials)}

    assert credfile.update(after, write) == after


@SETTINGS
@given(built=files(), data=st.data())
def test_removing_what_was_appended_gives_back_the_file(built: Built, data: st.DataObject) -> None:
    created = data.draw(fresh_names(built).filter(bool))
    before = built.text
    written = credfile.update(before, {name: make_credentials(n) for n, name in enumerate(created)})
    assert credfile.update(written, {}, remove=created) == before


@SETTINGS
@given(built=files(), data=st.data())
def test_remove_drops_only_owned_sections(built: Built, data: st.DataObject) -> None:
    remove = data.draw(st.lists(st.sampled_from([*built.kinds, "missing"]), unique=True))
    removed = {name for name in remove if built.kinds.get(name) == OWNED}
    before = built.text

    after = credfile.update(before, {}, remove=remove)

    read_before, read_after = botocore_read(before), botocore_read(after)
    assert read_after == {name: values for name, values in read_before.items() if name not in removed}
    # Bytes: outside the removed sections' bodies (header to last key line), every line that is
    # not blank is still there in order; blank lines next to a removed body may go with it.
    last = {name: max(i for i, line in enumerate(built.lines) if line.section == name) for name in removed}
    in_body, body = set(), None
    for i, line in enumerate(built.lines):
        if line.part == "header":
            body = line.section if line.section in removed else None
        if body is not None and i <= last[body]:
            in_body.add(i)
    raw_lines = built.raw_lines()
    kept = [raw for i, raw in enumerate(raw_lines) if i not in in_body and raw.strip()]
    out = [raw for raw in split(after) if raw.strip()]
    assert without_final_newline(out) == without_final_newline(kept)
    if not any(all(not raw.strip() for raw in raw_lines[i + 1:]) for i in last.values()):
        # (Otherwise the new last line may be a blank one, which without its ending is no line at all.)
        assert_line_endings_kept(built, after)


@settings(SETTINGS, max_examples=50)
@given(built=files(kinds=(LONG_TERM,)).filter(lambda built: built.kinds), data=st.data())
def test_never_overwrites_a_long_term_key(built: Built, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(list(built.kinds)))
    header = next(i for i, line in enumerate(built.lines) if line.part == "header" and line.section == name)
    with pytest.raises(CredentialsFileError) as caught:
        credfile.update(built.text, {name: make_credentials()})
    assert caught.value.line == header + 1
    assert f"credd keys import SOURCE --from-profile {name}" in str(caught.value)
