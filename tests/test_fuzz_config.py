"""The config loader under hostile input: arbitrary bytes and text, and YAML built from the real keys
with hostile values (wrong types, huge numbers, odd unicode, NULs, tags, anchors, very long strings).

Whatever comes in, `parse_config`/`load_config` give a `Config` or a `ConfigError` whose message
names the file (and, for anything in the file, its line) on one bounded line; never another
exception. The real `credd config check` says the same with exit status 0 or 2.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credd.config import load_config, parse_config
from credd.errors import ConfigError
from credd.model import Config
from tests.conftest import Home, run_credd

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABEL = "config.yaml"
ENV = {"HOME": "/home/user", "XDG_RUNTIME_DIR": "/run/user/1000", "ACCOUNT": "111111111111"}
MAX_MESSAGE = 600  # characters after "file:line: "; the longest real message is about 300
# Texts that mean an exception's internals reached the user.
INTERNALS = re.compile(r"Traceback|Error\(|invalid literal|set_int_max_str_digits|has no attribute|<unicode string>|"
                       r"codec can't|object is not|unhashable|NoneType")
# What YAML counts as a line break (marks count lines by these).
YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Errors about the whole file, a top-level key it lacks, or the environment: no line to name.
WHOLE_FILE = ("the file is empty", "is required", "$", "is larger than", "no such file", "is a directory",
              "cannot read it")


def parse(text: str) -> Config | ConfigError:
    try:
        return parse_config(text, LABEL, Path("/home/user/.config/credd/config.yaml"), ENV, "linux", 1000)
    except ConfigError as e:
        assert_good_error(e, text)
        return e


def assert_good_error(error: ConfigError, text: str, label: str = LABEL) -> None:
    message = str(error)
    assert message.startswith(f"{label}:"), message
    assert len(message.splitlines()) == 1, f"more than one line: {message!r}"
    assert len(message) <= len(label) + 10 + MAX_MESSAGE, f"{len(message)} characters: {message[:300]!r}..."
    assert not INTERNALS.search(message), message
    if error.line is None:
        assert error.detail.startswith(WHOLE_FILE), f"no line named: {message!r}"
    else:
        assert message.startswith(f"{label}:{error.line}: ")
        assert 1 <= error.line <= len(YAML_BREAKS.findall(text)) + 1, message


# (a) Arbitrary text and bytes ---------------------------------------------------------------------

FRAGMENTS = ["version: 1\n", "sources:\n", "profiles:\n", "  alice:\n", "    source: alice\n", "    duration: ",
             "refresh_before: ", "socket: ", "credentials_file: ", "  - ", "&a ", "*a", "<<: *a\n", "!!int ",
             "!!timestamp ", "!!binary ", "!a%ff ", "!<%c3%28> ", "!!python/object:os.system ", "!<tag:x> ", "? ",
             ": ", "---\n", "...\n",
             "%YAML 1.1\n", "%TAG ! tag:x:\n", "'", '"', "\\u", "\\x00", "[", "]", "{", "}", ",", "#", "|\n", ">-\n",
             "\t", "\r\n", "\r", "\x00", "\x85", "\u2028", "\ufeff", "9" * 5000, "2001-13-45", "1e999", ".nan", "~",
             "yes", "0x", "0o9", "-1", "1_0", "é", "🔑", " " * 80]
TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map("".join),
)


@SETTINGS
@given(text=TEXT)
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    parse(text)


@settings(SETTINGS, max_examples=300)
@given(data=st.one_of(st.binary(max_size=300), TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))))
def test_any_bytes_in_a_file_give_a_config_or_a_config_error(scratch: Path, data: bytes) -> None:
    path = scratch / "config.yaml"
    path.write_bytes(data)
    try:
        load_config(path, ENV, "linux", 1000)
    except ConfigError as e:
        assert_good_error(e, data.decode("utf-8", "replace"), label=str(path))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


# (b) YAML from a grammar of the real keys ---------------------------------------------------------

def quoted(text: str) -> str:
    """A double-quoted YAML scalar: every character that is not plain printable ASCII as an escape."""
    escaped = "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08x}" for c in text)
    return f'"{escaped}"'


GOOD = {  # one valid value per key, so that generated files get past the first check
    "version": ["1"],
    "credentials_file": ["~/.aws/credentials", "/tmp/credentials", "$HOME/creds"],
    "socket": ["/run/user/1000/credd/credd.sock", "~/s.sock"],
    "keyring_service": ["credd", "credd-test"],
    "refresh_before": ["20m", "900", "1h"],
    "mfa_serial": ["arn:aws:iam::111111111111:mfa/alice"],
    "mfa": ["totp", "prompt", "command"],
    "mfa_command": ["[ykman, oath, accounts, code, --single, aws]", "[echo, 123456]"],
    "duration": ["12h", "1h", "3600", "15m"],
    "region": ["us-east-1", "eu-west-1"],
    "sts_endpoint": ["https://sts.us-east-1.amazonaws.com", "http://127.0.0.1:5000"],
    "source": ["alice", "bob"],
    "role_arn": ["arn:aws:iam::222222222222:role/Admin"],
    "role_session_name": ["alice"],
    "external_id": ["optional-external-id"],
    "write": ["true", "false"],
}
HOSTILE_SCALARS = [
    "", "~", "null", "0", "-1", "-15m", "0s", "1.5", ".inf", "-.inf", ".nan", "1e999", "yes", "no", "on", "off",
    "0x1F", "0o17", "0b101", "1_000", "12:30:00", "2001-12-14", "2001-13-45", "2001-12-14t21:59:43.10-05:00",
    "9" * 4400, "9" * 40 + "h", "99999999999999999999d", "1h30", "h", "١٢h", "²", "𝟏𝟐h", "!!int abc", "!!int 12",
    "!!float x", "!!bool maybe", "!!timestamp x", "!!timestamp 2001-99-99", "!!binary '@@@'", "!!binary aGk=",
    "!!str 1", "!!null x", "!!python/object:os.system x", "!!python/name:os.system ''", "!custom x",
    "!<tag:yaml.org,2002:int> 7", "!!set {a, b}", "!!omap [a: 1]", "!!map {}", "!!seq []", "[]", "{}", "[1, [2]]",
    "{a: b}", "[[[[[[[[]]]]]]]]", "*nowhere", "&x 1", "'quoted'", "'it''s'", "|\n      block\n", ">\n      folded\n",
    "arn:aws:iam::١١١١١١١١١١١١:role/x", "https://sts.example.com:99999", "http://example.com", "http://[::1]:80",
    "https://h\u0000st", "/tmp/\u2028", "relative/path", "$UNSET/x", "${HOME}", "~root/x", "\\", "#", "%", "@x",
]
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40).map(quoted),
    st.sampled_from(["\x00", "\ud800", "\udc80", "\u2028", "\x85", "\n", "\r", "\ufeff", "\u202e", "a\tb"]).map(quoted),
    st.integers(1000, 30000).map(lambda n: quoted("x" * n)),
    st.integers(-(10 ** 30), 10 ** 30).map(str),
)
HOSTILE = st.one_of(st.sampled_from(HOSTILE_SCALARS), HOSTILE_TEXT)
GOOD_NAMES = ["alice", "bob", "prod-admin", "a.b@c+d=e,f"]
HOSTILE_NAMES = st.one_of(
    st.sampled_from(["<<", "~", "1", "true", "[x]", "-x", "x" * 65, "x" * 5000, "'with space'", "été", "2001-13-45",
                     "a:b", "!!int 5", "? [a]", "*nowhere", "!!binary aGk="]),
    st.text(max_size=20).map(quoted),
)
# Keys that make sense together, so that most files get past the first check to the later ones:
# each shape maps its keys to whether a valid file needs them.
TOP = {"version": False, "credentials_file": False, "socket": False, "keyring_service": False,
       "refresh_before": False}
SOURCE_SHAPES = [{"region": False, "duration": False, "sts_endpoint": False},
                 {"mfa_serial": True, "mfa": False, "region": False, "duration": False},
                 {"mfa_serial": True, "mfa": True, "mfa_command": True, "sts_endpoint": False}]
PROFILE_SHAPES = [{"source": True, "write": False},
                  {"source": True, "role_arn": True, "role_session_name": False, "external_id": False,
                   "duration": False, "write": False}]
HOSTILITY = [0, 1, 3, 8]  # in twentieths: how often a value is hostile in one file
ANCHORS = ["&shared", "*shared", "!!map", "!!str", "*undefined"]
SOURCE_NAMES = ["alice", "bob", "a.b@c+d=e,f"]
PROFILE_NAMES = ["p", "prod-admin", "alice"]


class Grammar:
    """One file's draws: how hostile its values are, and which sources it has."""

    def __init__(self, draw) -> None:
        self.draw = draw
        self.hostility = draw(st.sampled_from(HOSTILITY))
        self.sources: list[str] = []

    def hostile(self) -> bool:
        return self.draw(st.integers(0, 19)) < self.hostility

    def rare(self) -> bool:
        """Hostile structure (a missing section, an unknown key): rarer than a hostile value."""
        return self.draw(st.integers(0, 59)) < self.hostility

    def value(self, key: str, good: list[str]) -> str:
        return self.draw(HOSTILE) if self.hostile() else self.draw(st.sampled_from(good))

    def block(self, shape: dict[str, bool], indent: str, good) -> list[str]:
        """`key: value` lines for the keys of `shape` (optional ones now and then left out)."""
        chosen = [key for key, needed in shape.items() if (needed and not self.rare()) or self.draw(st.booleans())]
        lines = [f"{indent}{key}: {self.value(key, good(key))}" for key in chosen]
        if self.rare():
            lines.append(f"{indent}{self.draw(st.sampled_from(['colour', 'Version', 'mfa_Serial', *chosen[:1]]))}: x")
        return lines

    def entries(self, shapes: list[dict[str, bool]], names: list[str], good) -> list[str]:
        lines = []
        for name in self.draw(st.permutations(names))[:self.draw(st.integers(1, len(names)))]:
            name = self.draw(HOSTILE_NAMES) if self.hostile() else name
            anchor = self.draw(st.sampled_from(ANCHORS)) if self.rare() else ""
            lines.append(f"  {name}: {anchor}".rstrip())
            if "*" not in anchor:
                shape = self.draw(st.sampled_from(shapes))
                lines += self.block(shape, "    ", partial(good, name, shape))
            if shapes is SOURCE_SHAPES:
                self.sources.append(name)
        return lines

    def source_value(self, name: str, shape: dict[str, bool], key: str) -> list[str]:
        if key == "mfa_serial":
            return [f"arn:aws:iam::111111111111:mfa/{name}"]
        if key == "mfa":
            return ["command"] if "mfa_command" in shape else ["totp", "prompt"]
        return GOOD[key]

    def profile_value(self, name: str, shape: dict[str, bool], key: str) -> list[str]:
        return (self.sources or SOURCE_NAMES) if key == "source" else GOOD[key]


@st.composite
def config_texts(draw) -> str:
    grammar = Grammar(draw)
    lines = grammar.block(TOP, "", lambda key: GOOD[key])
    if not grammar.rare():
        lines += ["sources:", *grammar.entries(SOURCE_SHAPES, SOURCE_NAMES, grammar.source_value)]
    if not grammar.rare():
        lines += ["profiles:", *grammar.entries(PROFILE_SHAPES, PROFILE_NAMES, grammar.profile_value)]
    if grammar.rare():
        lines = draw(st.permutations(lines))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    start = draw(st.sampled_from(["---\n", "%YAML 1.1\n---\n", "\ufeff"])) if grammar.rare() else ""
    return start + eol.join(lines) + eol


@SETTINGS
@given(text=config_texts())
def test_hostile_values_for_real_keys_give_a_config_or_a_config_error(text: str) -> None:
    parse(text)


def test_the_grammar_reaches_valid_configs_and_deep_checks() -> None:
    """The generator is worth its examples: it makes valid configs, and errors from checks deep in the file
    (a source's or profile's keys, refresh_before against every lifetime), not only syntax errors."""
    seen: dict[str, int] = {"config": 0, "deep": 0}

    @settings(SETTINGS, max_examples=200)
    @given(text=config_texts())
    def count(text: str) -> None:
        result = parse(text)
        if isinstance(result, Config):
            seen["config"] += 1
        elif result.key.startswith(("sources.", "profiles.", "refresh_before")):
            seen["deep"] += 1

    count()
    assert seen["config"] >= 5 and seen["deep"] >= 10, seen


# Plain examples of what the fuzzing found --------------------------------------------------------

BASE = "version: 1\nsources:\n  alice:\n    region: us-east-1\nprofiles:\n  p:\n    source: alice\n"


@pytest.mark.parametrize("text, line, detail", [
    ("version: " + "1" * 5000 + "\n", 1, "YAML reads this value as int"),
    ("version: 2001-13-45\n", 1, "YAML reads this value as timestamp"),
    ("2001-13-01: x\n", 1, "YAML reads this value as timestamp"),
    ("version: !!int abc\n", 1, "YAML reads this value as int"),
    ("version: !!bool maybe\n", 1, "YAML reads this value as bool"),
    ("version: !!int ''\n", 1, "YAML reads this value as int"),
    ("version: !!float x\n", 1, "YAML reads this value as float"),
    ("version: !!timestamp x\n", 1, "YAML reads this value as timestamp"),
    ("!!binary \xa0: x\n", 1, "YAML reads this value as binary"),
    ("version: !!python/object:os.system x\n", 1, "constructor for the tag 'tag:yaml.org,2002:python/object:os"),
    ("version: !" + "t" * 5000 + " x\n", 1, "constructor for the tag '!tttt"),
    ("version: 1\n\nsources: \x00\n", 3, "the character #x0000 cannot appear in YAML"),
    ("version: 1\x07\n", 1, "the character #x0007 cannot appear in YAML"),
    ("version: 1\nsources: !a%ff x\n", 2, "while scanning a tag: a %-escape that is not UTF-8"),  # atheris
    (BASE + 'socket: "/tmp/\\ud800.sock"\n', 8, "is not a path this system can name"),
    (BASE + 'credentials_file: "/tmp/\\ud800"\n', 8, "is not a path this system can name"),
    ('"foo\\nbar": 1\n', 1, "unknown key"),
    (BASE.replace("region: us-east-1", "duration: '²'"), 4, "expected a duration like 90s, 20m or 12h"),
    (BASE.replace("region: us-east-1", "duration: '" + "9" * 5000 + "'"), 4, "expected a duration like 90s"),
    (BASE.replace("region: us-east-1", "duration: " + "9" * 4000), 4, "is out of range"),
    (BASE.replace("region: us-east-1", "region: us-east-١"), 4, "expected an AWS region"),
    (BASE.replace("region: us-east-1", "sts_endpoint: http://localhost:99999"), 4, "expected a URL"),
    ("[" * 5000, 1, "nested too deeply"),
    ("version: 1\n? " + "y" * 100000 + "\n: 1\n", 2, "unknown key"),
    ("profiles: {}\n", None, "is required"),
])
def test_hostile_config_examples(text: str, line: int, detail: str) -> None:
    error = parse(text)
    assert isinstance(error, ConfigError), error
    assert error.line == line and detail in error.detail, str(error)


def test_a_path_that_cannot_be_named_is_refused_before_it_is_used() -> None:
    """A lone surrogate in `credentials_file` used to pass the check and crash the daemon's first write."""
    error = parse(BASE + 'credentials_file: "/tmp/\\udc80ok"\n')  # surrogateescape's: an undecodable byte, fine
    assert isinstance(error, Config) and str(error.credentials_file) == "/tmp/\udc80ok"


# The real command on generated files --------------------------------------------------------------

def test_credd_config_check_on_generated_files(home: Home) -> None:
    """`credd config check` on a few dozen generated files: exit 0 or 2, a message, never a traceback."""
    texts: list[str] = []

    @settings(SETTINGS, max_examples=24)
    @given(text=st.one_of(config_texts(), TEXT))
    def collect(text: str) -> None:
        texts.append(text)

    collect()
    files = []
    for n, text in enumerate(texts):
        path = home.root / f"config-{n}.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        files.append(path)

    def check(path: Path):
        return path, run_credd(["--config", str(path), "config", "check"], home)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(check, files))
    for path, result in results:
        assert result.returncode in (0, 2), (path.read_bytes()[:500], result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        if result.returncode == 2:
            assert result.stderr.startswith(f"{path}") or f"{path}" in result.stderr.splitlines()[-1], result.stderr
