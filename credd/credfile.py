"""The shared credentials file: a byte-preserving editor. Pure: text in, text out.

Users keep years of hand-edited profiles in `~/.aws/credentials`, so credd
changes only the lines it owns and copies every other byte as it was:
comments, blank lines, order, unknown keys, line endings, a missing final
newline. It reads the file exactly as botocore does (configparser's
`RawConfigParser` with its defaults: `#`/`;` comment lines, no inline
comments, indented continuation lines, lower-cased key names, duplicates are
errors, `[DEFAULT]` merged into every section), so it never writes a file the
SDKs cannot read, and refuses to touch one they already cannot read.

Ownership lives in the file itself: every section credd writes carries
`x_credd_expiration` (botocore ignores unknown keys). A mark in the section,
rather than a list kept elsewhere, survives daemon restarts and config edits,
and is checked against the very text being changed, under the same lock. It
matters in two places: credd removes only sections it owns, and it overwrites
a section holding a long-term key (`aws_access_key_id` with no session token)
only if it owns it.

Entry points: `update` and `expired_sections` (the daemon), `read_long_term_key` and
`remove_long_term_key` (`credd keys import`), `read_profiles` (what botocore
would read; `doctor` and the tests), and `set_keys`, the same editing without
the credentials rules, for `~/.aws/config` (`credd init` adds
`credential_process` lines there; botocore reads that file with the same
parser). Text comes in as `atomicfile.read_text` decodes it: UTF-8 with
newlines untouched, undecodable bytes as lone surrogates, which are reported
here as the line that is not UTF-8.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection, Iterator, Mapping
from configparser import RawConfigParser
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import NoReturn

from credd.errors import CredentialsFileError, one_line
from credd.model import AccessKey, Credentials, Secret
from credd.timefmt import parse_utc, utc_text

ACCESS_KEY_ID = "aws_access_key_id"
SECRET_ACCESS_KEY = "aws_secret_access_key"
SESSION_TOKEN = "aws_session_token"
SECURITY_TOKEN = "aws_security_token"  # the legacy name; botocore prefers it over aws_session_token
EXPIRATION = "x_credd_expiration"  # credd's mark of ownership, and when the credentials expire
MANAGED = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, EXPIRATION)
LONG_TERM = (ACCESS_KEY_ID, SECRET_ACCESS_KEY)

DEFAULT_SECTION = "DEFAULT"  # configparser's defaults for every section, not a profile
COMMENT_PREFIXES = ("#", ";")  # RawConfigParser's default comment_prefixes
SECTION_HEADER = RawConfigParser.SECTCRE
OPTION = RawConfigParser.OPTCRE
NON_SPACE = RawConfigParser.NONSPACECRE
LABEL = "the shared credentials file"

# Universal newlines, as botocore's text-mode read splits lines: \r\n, \r or \n.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_NOT_UTF8 = re.compile("[\ud800-\udfff]")  # what `surrogateescape` made of undecodable bytes
_KEY_NAME = re.compile(r"[a-z0-9_][a-z0-9_.-]*")  # a key `set_keys` may add
_SHOWN_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,39}")  # a key name an error message may quote


class Kind(Enum):
    BLANK = "blank"
    COMMENT = "comment"
    HEADER = "header"
    OPTION = "option"
    CONTINUATION = "continuation"


@dataclass(slots=True)
class Key:
    """One option: its line, its continuation lines, and the pieces configparser joins into its value."""

    name: str  # lower-cased, as configparser's optionxform does
    lines: list[int]
    parts: list[str] = field(repr=False)  # the value: may be a secret

    @property
    def value(self) -> str:
        return self.parts[0] if len(self.parts) == 1 else "\n".join(self.parts).rstrip()


@dataclass(slots=True)
class Section:
    name: str
    header: int  # index of the header line
    last: int  # index of the last line of its body: its last key line, or the header
    keys: dict[str, Key] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {name: key.value for name, key in self.keys.items()}

    @property
    def owned(self) -> bool:
        return EXPIRATION in self.keys

    @property
    def holds_long_term_key(self) -> bool:
        """A key id with no session token of either name: an IAM user's key, which only its owner may drop."""
        return ACCESS_KEY_ID in self.keys and SESSION_TOKEN not in self.keys and SECURITY_TOKEN not in self.keys


@dataclass(slots=True)
class Document:
    """A parsed file: its lines (with their endings) and where each section and key stands."""

    lines: list[str] = field(repr=False)  # the file's text: may hold secrets
    kinds: list[Kind] = field(default_factory=list)
    sections: dict[str, Section] = field(default_factory=dict)
    defaults: dict[str, Key] = field(default_factory=dict)
    headers: list[int] = field(default_factory=list)  # every header line, [DEFAULT] included

    @property
    def eol(self) -> str:
        """The file's line ending, for lines credd adds: that of its first line, else LF."""
        for line in self.lines:
            ending = line[len(line.rstrip("\r\n")):]
            if ending:
                return ending
        return "\n"


# Reading ---------------------------------------------------------------------


def parse(text: str, path: str = LABEL) -> Document:
    """The file as botocore reads it, or a CredentialsFileError naming the first line it refuses."""
    if text.startswith("\ufeff"):
        raise CredentialsFileError(path, 1, "the file starts with a byte order mark (BOM), which botocore cannot "
                                            "read; save it as UTF-8 without BOM")
    lines = _LINE.findall(text)
    if _NOT_UTF8.search(text):
        number = next(n for n, line in enumerate(lines, 1) if _NOT_UTF8.search(line))
        raise CredentialsFileError(path, number, "this line is not valid UTF-8, so botocore cannot read the file; "
                                                 "save it as UTF-8")
    doc = _read(lines, path)
    for key in _values_botocore_reads(doc):
        _check_nested(key, lines, path)
    return doc


def split_lines(text: str) -> list[str]:
    """The file's lines, each with its ending, split as botocore's text-mode read splits them."""
    return _LINE.findall(text)


def read_profiles(text: str, path: str = LABEL) -> dict[str, dict[str, object]]:
    """What `botocore.configloader.raw_config_parse` returns for this file: section -> key -> value.

    `[DEFAULT]` keys are merged into every section, and a value that starts on
    the next line is a dict of its indented `key = value` lines, as botocore has it.
    """
    doc = parse(text, path)
    defaults = {name: key.value for name, key in doc.defaults.items()}
    return {name: {key: _nested(value) for key, value in {**defaults, **section.values()}.items()}
            for name, section in doc.sections.items()}


def _read(lines: list[str], path: str) -> Document:
    """configparser's `RawConfigParser._read`, step for step, noting what each line is.

    The loop runs once per line of files with tens of thousands of them, hence
    the local names for what it calls.
    """
    doc = Document(lines)
    kind = doc.kinds.append
    first_non_space, header_match, option_match = NON_SPACE.search, SECTION_HEADER.match, OPTION.match
    keys: dict[str, Key] | None = None  # the current section's keys; None before the first header
    section: Section | None = None  # None in [DEFAULT]
    key: Key | None = None  # the key an indented line continues
    indent_level = 0
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(COMMENT_PREFIXES):
            kind(Kind.COMMENT)
            continue
        if not stripped:
            kind(Kind.BLANK)
            if key is not None:
                key.parts.append("")  # an empty line inside a value; trailing ones are dropped at the end
            continue
        non_space = first_non_space(line)
        assert non_space is not None  # `stripped` is not empty
        indent = non_space.start()
        if key is not None and indent > indent_level:
            kind(Kind.CONTINUATION)
            key.lines.append(index)
            key.parts.append(stripped)
        else:
            indent_level = indent
            header = header_match(stripped)
            if header:
                kind(Kind.HEADER)
                keys, section = _start_section(doc, header.group("header"), index, path)
                key = None
                continue
            option = option_match(stripped) if keys is not None else None
            if option is None or keys is None:
                _refuse_line(keys, "", index, path, section)
            name = option.group("option").rstrip().lower()
            if not name or name in keys:
                _refuse_line(keys, name, index, path, section)
            kind(Kind.OPTION)
            key = keys[name] = Key(name, [index], [option.group("value").strip()])
        if section is not None:
            section.last = index
    return doc


def _start_section(doc: Document, name: str, index: int, path: str) -> tuple[dict[str, Key], Section | None]:
    doc.headers.append(index)
    if name == DEFAULT_SECTION:  # may appear more than once; its keys still may not
        return doc.defaults, None
    if name in doc.sections:
        first = doc.sections[name].header + 1
        raise CredentialsFileError(path, index + 1, f"section [{_name(name)}] appears a second time (first at "
                                                    f"line {first}); botocore refuses the whole file: merge the two "
                                                    "sections")
    section = doc.sections[name] = Section(name, index, index)
    return section.keys, section


def _refuse_line(keys: dict[str, Key] | None, name: str, index: int, path: str, section: Section | None) -> NoReturn:
    """The error for a line where a key should be and is not, or is a second time."""
    if keys is None:
        raise CredentialsFileError(path, index + 1, "this line comes before the first [section] header, which "
                                                    "botocore refuses; put it under a section or start it with #")
    if not name:
        raise CredentialsFileError(path, index + 1, "this line is neither a [section] header, a `key = value` line "
                                                    "nor a # comment, so botocore refuses the whole file; fix it, "
                                                    "or start it with # to make it a comment")
    where = f"section [{_name(section.name)}]" if section else f"[{DEFAULT_SECTION}]"
    raise CredentialsFileError(path, index + 1, f"{_key(name)} appears a second time in {where} (first at line "
                                                f"{keys[name].lines[0] + 1}; key names ignore case); botocore "
                                                "refuses the whole file: remove one of them")


def _name(name: str) -> str:
    """A section name from the file as a message shows it: on one line, no terminal escapes, bounded."""
    return one_line(name, 64)


def _key(name: str) -> str:
    """A key's name as an error names it: a pasted secret (`SECRET=`) reads as a key name, so only
    names that look like names are shown; the line number says which one it is."""
    return f"key {name}" if _SHOWN_KEY.fullmatch(name) and ("_" in name or len(name) <= 12) else "a key"


def _check_nested(key: Key, lines: list[str], path: str) -> None:
    """botocore reads a value that starts on the next line as indented `key = value` lines, and fails without `=`."""
    if key.parts[0] or len(key.lines) == 1:
        return
    for index in key.lines[1:]:
        for piece in lines[index].strip().splitlines():
            if piece.strip() and "=" not in piece:
                raise CredentialsFileError(path, index + 1, f"{_key(key.name)} (line {key.lines[0] + 1}) holds "
                                                            "indented `name = value` lines, and this one has no "
                                                            "`=`, which botocore refuses; add it or remove the line")


def _nested(value: str) -> object:
    if not value.startswith("\n"):
        return value
    pairs = (line.strip().split("=", 1) for line in value.splitlines() if line.strip())
    return {name.strip(): item.strip() for name, item in pairs}


def _values_botocore_reads(doc: Document) -> Iterator[Key]:
    """Every section's keys, and the [DEFAULT] keys some section inherits (botocore reads no others)."""
    for section in doc.sections.values():
        yield from section.keys.values()
    for name, key in doc.defaults.items():
        if any(name not in section.keys for section in doc.sections.values()):
            yield key


# Changing --------------------------------------------------------------------


def credential_values(credentials: Credentials) -> dict[str, str]:
    """The keys credd writes for one profile, in the order it writes them."""
    expiration = utc_text(credentials.expiration)
    return {
        ACCESS_KEY_ID: credentials.access_key_id,
        SECRET_ACCESS_KEY: credentials.secret_access_key.reveal(),
        SESSION_TOKEN: credentials.session_token.reveal(),
        EXPIRATION: expiration,
    }


def update(text: str, write: Mapping[str, Credentials], remove: Collection[str] = (), *,
           path: str = LABEL) -> str:
    """The daemon's one call: `write` each profile's credentials into its section, drop the `remove` ones.

    A written section keeps every key credd does not manage and loses a stale
    `aws_security_token`; a section the file lacks is added at its end. Only
    sections credd owns are removed; others named in `remove` stay as they are.
    Raises CredentialsFileError, and changes nothing, for a file botocore cannot
    read and for a section that holds a long-term key credd does not own.
    Call it through `atomicfile.update_file`, which re-applies it if the file
    changes meanwhile.
    """
    if set(write) & set(remove):
        raise ValueError("a profile cannot be both written and removed")
    doc = parse(text, path)
    edits = _Edits()
    expected: dict[str, dict[str, str] | None] = {}
    for name, credentials in write.items():
        values = credential_values(credentials)
        _check_writable(doc, name, values, path)
        expected[name] = _set_keys(doc, name, values, edits)
    owned = [doc.sections[name] for name in remove if name in doc.sections and doc.sections[name].owned]
    for section in sorted(owned, key=lambda section: section.header, reverse=True):
        _delete_section(doc, section, edits)
        expected[section.name] = None
    return _apply(doc, edits, expected, path)


def read_owned_credentials(text: str, section: str, path: str = LABEL) -> Credentials | None:
    """The temporary credentials credd wrote into `section` (marked with its expiration), else None.

    None for a section credd does not own, one missing a key, or a mark that is
    not a time credd writes: nothing here is trusted that credd did not put there.
    """
    found = parse(text, path).sections.get(section)
    if found is None or not found.owned or not all(key in found.keys for key in MANAGED):
        return None
    values = found.values()
    try:
        expiration = parse_utc(values[EXPIRATION])
    except ValueError:
        return None
    return Credentials(values[ACCESS_KEY_ID], Secret(values[SECRET_ACCESS_KEY]), Secret(values[SESSION_TOKEN]),
                       expiration)


@dataclass(frozen=True)
class LongTermSection:
    """A section holding a long-term key credd does not own: `update` refuses to write it."""

    name: str
    line: int  # of its header, from 1
    key_id: str


def long_term_sections(text: str, names: Collection[str], path: str = LABEL) -> dict[str, LongTermSection]:
    """Those of `names` whose section holds a long-term key credd does not own (see `update`)."""
    doc = parse(text, path)
    found = {}
    for name in names:
        section = doc.sections.get(name)
        if section is not None and section.holds_long_term_key and not section.owned:
            found[name] = LongTermSection(name, section.header + 1, section.keys[ACCESS_KEY_ID].value)
    return found


def expired_sections(text: str, cutoff: datetime, path: str = LABEL) -> list[str]:
    """The sections credd owns whose credentials expire by `cutoff`, by their own mark.

    A section without the mark is never one of them, whatever it holds; nor is
    one whose mark does not read as a time (credd cannot tell when it expires).
    """
    expired = []
    for name, section in parse(text, path).sections.items():
        if not section.owned:
            continue
        try:
            expires = parse_utc(section.keys[EXPIRATION].value)
        except ValueError:
            continue
        if expires <= cutoff:
            expired.append(name)
    return expired


def read_long_term_key(text: str, section: str, path: str = LABEL) -> AccessKey:
    """The long-term key in `section`, as botocore reads it (its shape is the caller's to check)."""
    doc = parse(text, path)
    found = doc.sections.get(section)
    if found is None:
        names = ", ".join(f"[{_name(name)}]" for name in list(doc.sections)[:20]) or "none"
        raise CredentialsFileError(path, None, f"there is no section [{section}] (sections: {names}); "
                                               "name the one that holds the key")
    where = f"section [{section}]"
    if not found.holds_long_term_key:
        if ACCESS_KEY_ID in found.keys:
            raise CredentialsFileError(path, found.header + 1, f"{where} holds temporary credentials (it has a "
                                                               "session token), not a long-term key to import")
        raise CredentialsFileError(path, found.header + 1, f"{where} has no {ACCESS_KEY_ID}; name the section "
                                                           "that holds the long-term key")
    if SECRET_ACCESS_KEY not in found.keys:
        raise CredentialsFileError(path, found.header + 1, f"{where} has no {SECRET_ACCESS_KEY}; the key cannot "
                                                           "be imported without its secret")
    return AccessKey(found.keys[ACCESS_KEY_ID].value, Secret(found.keys[SECRET_ACCESS_KEY].value))


def remove_long_term_key(text: str, section: str, key: AccessKey, path: str = LABEL) -> str:
    """Drop `key` from `section`: the two key lines, or the whole section when nothing else is left in it.

    Refuses if the section now holds another key than the one imported (someone
    changed it meanwhile); a key already gone is no error, so this can be re-applied.
    """
    return remove_long_term_keys(text, {section: key}, path)


def remove_long_term_keys(text: str, keys: Mapping[str, AccessKey], path: str = LABEL) -> str:
    """`remove_long_term_key` for each section of `keys` (section -> its key), in one edit: one parse and one
    proof, however many sections (`credd config import` moves a key per source)."""
    doc = parse(text, path)
    edits = _Edits()
    expected: dict[str, dict[str, str] | None] = {}
    # Last section first: a section deleted at the end of the file takes the blank line before it only once
    # every later one is gone (`_delete_section`).
    for section, key in sorted(keys.items(), key=lambda item: -_header_of(doc, item[0])):
        found = doc.sections.get(section)
        if found is None or ACCESS_KEY_ID not in found.keys:
            continue
        values = found.values()
        if (values.get(ACCESS_KEY_ID), values.get(SECRET_ACCESS_KEY)) != (key.key_id, key.secret.reveal()):
            raise CredentialsFileError(path, found.header + 1, f"the key in section [{section}] changed after "
                                                               "credd read it; nothing was removed. Run the import "
                                                               "again")
        rest = {name: value for name, value in values.items() if name not in LONG_TERM}
        if rest:
            for name in LONG_TERM:
                if name in found.keys:
                    edits.deleted.update(found.keys[name].lines)
        else:
            _delete_section(doc, found, edits)
        expected[section] = rest or None
    return _apply(doc, edits, expected, path)


def _header_of(doc: Document, section: str) -> int:
    found = doc.sections.get(section)
    return -1 if found is None else found.header


def set_keys(text: str, section: str, values: Mapping[str, str], path: str = LABEL) -> str:
    """Give `section` these `key = value` lines, adding the section at the end when the file lacks it.

    `update` without the credentials rules (no ownership mark, no long-term key
    guard, no `aws_security_token` clean-up), for other files botocore reads
    with the same parser, such as `~/.aws/config`. A key the section holds gets
    the new value on its own line; every other byte stays. Whether to replace a
    value someone else set is the caller's choice: read the section first with
    `parse`. Raises CredentialsFileError, and changes nothing, for a file
    botocore cannot read or an edit that would change how it reads other
    lines; ValueError for a section, key or value no INI line can hold.
    """
    if section == DEFAULT_SECTION:
        raise ValueError(f"[{DEFAULT_SECTION}] holds defaults for every section; name a section")
    for key in values:
        if not _KEY_NAME.fullmatch(key):  # configparser lower-cases names: "Region" would duplicate "region"
            raise ValueError(f"{key!r} cannot be a key name: use lower-case letters, digits, _ . and -")
    _check_line_safe(section, values, "section")
    doc = parse(text, path)
    edits = _Edits()
    expected = {section: _set_keys(doc, section, values, edits, stale=())}
    return _apply(doc, edits, expected, path)


def comment_keys(text: str, keys: Mapping[str, Collection[str]], mark: str, path: str = LABEL) -> str:
    """Turn the `keys` of each section (section -> key names; each key with its continuation lines) into comment
    lines `MARK + the line as it was`, in one edit: one parse and one proof, however many sections.

    The line endings stay and so does every other byte, so removing `mark` from those lines gives the
    file back as it was; a key the section lacks, or a section the file lacks, is no change.
    `mark` must start with `#` or `;`, so botocore reads the line as a comment.
    """
    if not mark.startswith(COMMENT_PREFIXES):
        raise ValueError("the mark must start a comment line")
    doc = parse(text, path)
    edits = _Edits()
    expected: dict[str, dict[str, str] | None] = {}
    for section, names in keys.items():
        found = doc.sections.get(section)
        if found is None:
            continue
        for name in names:
            for index in found.keys[name].lines if name in found.keys else ():
                edits.replaced[index] = mark + doc.lines[index].rstrip("\r\n")
        expected[section] = {name: value for name, value in found.values().items() if name not in names}
    return _apply(doc, edits, expected, path)


def _check_writable(doc: Document, name: str, values: Mapping[str, str], path: str) -> None:
    if name == DEFAULT_SECTION:
        raise CredentialsFileError(path, None, f"a profile cannot be named {DEFAULT_SECTION}: botocore reads "
                                               f"[{DEFAULT_SECTION}] as defaults for every section, not as a profile; "
                                               "rename the profile or set `write: false` for it")
    _check_line_safe(name, values)
    if SECURITY_TOKEN in doc.defaults:
        raise CredentialsFileError(path, doc.defaults[SECURITY_TOKEN].lines[0] + 1,
                                   f"[{DEFAULT_SECTION}] sets {SECURITY_TOKEN}, which botocore gives to every profile "
                                   f"and prefers over the {SESSION_TOKEN} credd writes; remove it from "
                                   f"[{DEFAULT_SECTION}]")
    section = doc.sections.get(name)
    if section is not None and section.holds_long_term_key and not section.owned:
        raise CredentialsFileError(path, section.header + 1,
                                   f"section [{name}] holds a long-term access key ({ACCESS_KEY_ID} without "
                                   f"{SESSION_TOKEN}), which credd does not overwrite. Move it into the keyring with "
                                   f"`credd keys import SOURCE --from-profile {name}` (SOURCE: the source in your "
                                   f"credd config it belongs to), or set `write: false` for profile {name}")


def _check_line_safe(name: str, values: Mapping[str, str], what: str = "profile") -> None:
    """Each name and value fits on its one line and reads back as written (ValueError never shows a value)."""
    if not name or re.search(r"[\r\n]", name) or _NOT_UTF8.search(name):
        raise ValueError(f"{name!r} cannot be a section name")
    for key, value in values.items():
        if not value or value.strip() != value or re.search(r"[\r\n]", value) or _NOT_UTF8.search(value):
            raise ValueError(f"the {key} of {what} {name!r} cannot be written to an INI file")  # never the value


@dataclass(repr=False)
class _Edits:
    """Line-level changes, applied in one pass: whole lines replaced, dropped, or added after a line."""

    replaced: dict[int, str] = field(default_factory=dict)  # index -> new content, its line ending kept
    deleted: set[int] = field(default_factory=set)
    after: dict[int, list[str]] = field(default_factory=dict)  # index -> contents of lines added after it
    appended: list[list[str]] = field(default_factory=list)  # new sections at the end of the file

    def __bool__(self) -> bool:
        return bool(self.replaced or self.deleted or self.after or self.appended)

    def __repr__(self) -> str:
        """Which lines change, never what they become: a new line may hold a secret."""
        after = {index: len(lines) for index, lines in sorted(self.after.items())}
        return (f"_Edits(replaced={sorted(self.replaced)}, deleted={sorted(self.deleted)}, lines added after={after}, "
                f"sections appended={len(self.appended)})")


def _set_keys(doc: Document, name: str, values: Mapping[str, str], edits: _Edits,
              stale: Collection[str] = (SECURITY_TOKEN,)) -> dict[str, str]:
    """Edits that give section `name` these values and drop its `stale` keys; returns the keys it will then hold."""
    section = doc.sections.get(name)
    if section is None:
        edits.appended.append([f"[{name}]"] + [f"{key} = {value}" for key, value in values.items()])
        return dict(values)
    missing = []
    for key_name, value in values.items():
        key = section.keys.get(key_name)
        if key is None:
            missing.append(f"{key_name} = {value}")
        elif key.value != value:
            edits.replaced[key.lines[0]] = _with_value(doc.lines[key.lines[0]], value)
            edits.deleted.update(key.lines[1:])
    dropped = [key for key in stale if key in section.keys and key not in values]
    for gone in dropped:
        edits.deleted.update(section.keys[gone].lines)
    if missing:
        indent = _indent_for_new_keys(doc, section)
        edits.after.setdefault(section.last, []).extend(indent + line for line in missing)
    kept = {key: value for key, value in section.values().items() if key not in dropped}
    return {**kept, **values}


def _with_value(line: str, value: str) -> str:
    """The option line with a new value; its indentation, key spelling and separator stay."""
    content = line.rstrip("\r\n")
    stripped = content.strip()
    option = OPTION.match(stripped)
    assert option is not None  # the line was read as an option
    head = stripped[:option.start("value")] if option.group("value") else stripped[:option.end("vi")] + " "
    return _leading_space(content) + head + value


def _indent_for_new_keys(doc: Document, section: Section) -> str:
    """Indentation at which added keys start new options and the next header stays a header.

    configparser reads a line indented deeper than the current option as that
    option's continuation. Options in a section never indent deeper than the one
    before them, so the last option's indentation is safe; with no option yet,
    the next header's is.
    """
    if section.keys:
        return _leading_space(doc.lines[list(section.keys.values())[-1].lines[0]])
    following = bisect.bisect_right(doc.headers, section.header)
    return _leading_space(doc.lines[doc.headers[following]]) if following < len(doc.headers) else ""


def _leading_space(line: str) -> str:
    found = NON_SPACE.search(line)
    return line[:found.start()] if found else ""


def _delete_section(doc: Document, section: Section, edits: _Edits) -> None:
    """Drop the header through its last key line and the blank lines after it (comments stay).

    At the end of the file (once later removals are done) the one blank line
    before it goes too: credd puts one there when it appends a section, so
    removing what credd appended gives back the file as it was.
    """
    start, end = section.header, section.last + 1
    while end < len(doc.lines) and doc.kinds[end] is Kind.BLANK:
        end += 1
    at_end = all(index in edits.deleted for index in range(end, len(doc.lines)))
    if at_end and start > 0 and doc.kinds[start - 1] is Kind.BLANK:
        start -= 1
    edits.deleted.update(range(start, end))


def _apply(doc: Document, edits: _Edits, expected: Mapping[str, dict[str, str] | None], path: str) -> str:
    """Render the edits, then prove botocore reads the result as intended, or raise and change nothing.

    The proof re-reads the new text: the changed sections hold what `expected`
    says, every other section and [DEFAULT] reads exactly as before. Lines are
    edited whole and indentation is chosen to keep each line's meaning, so this
    fails only for layouts no safe edit exists for (an indented header that
    would become part of the value above it).
    """
    if not edits:
        return "".join(doc.lines)
    text = _render(doc, edits)
    after = parse(text, path)
    before = {name: section.values() for name, section in doc.sections.items()}
    wanted = {name: values for name, values in before.items() if name not in expected}
    wanted.update({name: values for name, values in expected.items() if values is not None})
    got = {name: section.values() for name, section in after.sections.items()}
    defaults_kept = {k: v.value for k, v in after.defaults.items()} == {k: v.value for k, v in doc.defaults.items()}
    if got != wanted or not defaults_kept:
        bad = [name for name in before if got.get(name) != wanted.get(name)] or list(expected)
        line = doc.sections[bad[0]].header + 1 if bad[0] in doc.sections else None
        raise CredentialsFileError(path, line, "credd cannot change the file without changing how botocore reads "
                                               f"the lines near section [{_name(bad[0])}]; this is most likely an "
                                               "indented [section] header or key: remove the indentation and try again")
    return text


def _render(doc: Document, edits: _Edits) -> str:
    """The edited text: untouched runs of lines copied as they are, added lines ending as their neighbour does.

    Only the last line may lack a line ending, and it does exactly when the
    file's last line did.
    """
    eol = doc.eol
    lines = doc.lines
    ends_open = bool(lines) and not lines[-1].endswith(("\r", "\n"))
    if ends_open:
        lines = [*lines[:-1], lines[-1] + eol]  # it may not stay last; its ending goes again below
    out: list[str] = []
    copied = 0
    for index in sorted(edits.deleted | edits.replaced.keys() | edits.after.keys()):
        out.extend(lines[copied:index])
        copied = index + 1
        content = lines[index].rstrip("\r\n")
        ending = lines[index][len(content):]
        if index not in edits.deleted:
            out.append(edits.replaced.get(index, content) + ending)
        out.extend(added + ending for added in edits.after.get(index, ()))
    out.extend(lines[copied:])
    for block in edits.appended:
        if out:
            # A blank line before a new section; `_delete_section` takes it back. After a line that ends
            # in a lone CR, an LF would only turn that CR into a CRLF: the blank line is then a CR.
            out.append("\r" if out[-1].endswith("\r") and eol.startswith("\n") else eol)
        out.extend(added + eol for added in block)
    if ends_open and out:
        out[-1] = out[-1].rstrip("\r\n")
    return "".join(out)
