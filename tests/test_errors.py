"""`one_line`: the one sanitizer for what a message quotes, a name from a file or a server's prose."""

from __future__ import annotations

from credd.errors import one_line


def test_a_name_is_quoted_exactly_with_escapes():
    assert one_line("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
    assert one_line("x" * 100, 10) == "x" * 10 + "…"


def test_prose_keeps_its_words_on_one_line():
    """A server's line breaks and runs of spaces are layout: one space each; other control characters escaped."""
    said = one_line("line one\n  line two\r\n\tand\x1b[31m red", 300, prose=True)
    assert said == "line one line two and\\x1b[31m red"
    assert one_line("word " * 100, 20, prose=True) == "word word word word " + "…"
