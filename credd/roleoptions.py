"""The AssumeRole options a role profile may set, read from their YAML nodes with file:line errors.

`source_identity`, session `tags` and `transitive_tags`, managed `policy_arns`
and an inline `policy`: each checked as AWS checks it, so a mistake is a
config error at its line, not an STS refusal at the next refresh.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from credd.yamlnodes import Entries, NodeReader, shown

OPTION_KEYS = ("source_identity", "tags", "transitive_tags", "policy_arns", "policy")

SOURCE_IDENTITY = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
# AWS's session tags: a key of 1 to 128, a value of up to 256 of letters, digits, spaces and _.:/=+-@.
TAG_KEY = re.compile(r"[\w .:/=+@-]{1,128}")
TAG_VALUE = re.compile(r"[\w .:/=+@-]{0,256}")
MAX_TAGS = 50
POLICY_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}", re.ASCII)
MAX_POLICY_ARNS = 10
# AWS limits an inline session policy to 2048 characters; it counts the policy packed (no whitespace),
# so credd counts `json.dumps(..., separators=(",", ":"))`, which is also what it sends.
MAX_POLICY_CHARS = 2048


@dataclass(frozen=True)
class RoleOptions:
    source_identity: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tags: tuple[str, ...] = ()
    policy_arns: tuple[str, ...] = ()
    policy: str | None = None


def read_options(reader: NodeReader, fields: Entries, key: str) -> RoleOptions:
    """The options set under profile `key` (`profiles.NAME`); ConfigError at the line of the first bad one."""
    source_identity = None
    node = reader.optional(fields, "source_identity", key)
    if node is not None:
        source_identity = reader.string(node, f"{key}.source_identity", SOURCE_IDENTITY,
                                        "expected 2 to 64 of letters, digits and _+=,.@-")
    tags = _tags(reader, reader.optional(fields, "tags", key), f"{key}.tags")
    transitive: tuple[str, ...] = ()
    node = reader.optional(fields, "transitive_tags", key)
    if node is not None:
        transitive = _names(reader, node, f"{key}.transitive_tags", "a list of keys of `tags`, like [team]")
        known = {name for name, _ in tags}
        for item, name in zip(node.value, transitive, strict=True):
            if name not in known:
                raise reader.error(item, f"{key}.transitive_tags",
                                   f"{shown(name)} is not a key of this profile's `tags`; add it there "
                                   "(tags: {" + name + ": VALUE}) or remove it here")
    arns: tuple[str, ...] = ()
    node = reader.optional(fields, "policy_arns", key)
    if node is not None:
        arns = _names(reader, node, f"{key}.policy_arns",
                      "a list of policy ARNs, like [arn:aws:iam::aws:policy/ReadOnlyAccess]")
        if len(arns) > MAX_POLICY_ARNS:
            raise reader.error(node, f"{key}.policy_arns",
                               f"has {len(arns)} ARNs; AssumeRole takes at most {MAX_POLICY_ARNS}")
        for item, arn in zip(node.value, arns, strict=True):
            if not POLICY_ARN.fullmatch(arn):
                raise reader.error(item, f"{key}.policy_arns", "expected a policy ARN like "
                                   f"arn:aws:iam::aws:policy/ReadOnlyAccess, got {shown(arn)}")
    policy = _policy(reader, reader.optional(fields, "policy", key), f"{key}.policy")
    return RoleOptions(source_identity, tags, transitive, arns, policy)


def _tags(reader: NodeReader, node: yaml.Node | None, key: str) -> tuple[tuple[str, str], ...]:
    if node is None:
        return ()
    entries = reader.mapping(node, key)
    if len(entries) > MAX_TAGS:
        raise reader.error(node, key, f"has {len(entries)} tags; AssumeRole takes at most {MAX_TAGS}")
    tags = []
    seen: dict[str, str] = {}
    for name, (key_node, value_node) in entries.items():
        if not TAG_KEY.fullmatch(name):
            raise reader.error(key_node, f"{key}.{name}",
                               "a tag key has 1 to 128 of letters, digits, spaces and _.:/=+-@")
        # AWS treats tag keys case-insensitively: `Team` and `team` are one tag, and it refuses the pair.
        if name.lower() in seen:
            raise reader.error(key_node, f"{key}.{name}", f"the same tag key as {seen[name.lower()]!r} (AWS ignores "
                                                          "case in tag keys); keep one")
        seen[name.lower()] = name
        value = reader.scalar(value_node, f"{key}.{name}")
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not TAG_VALUE.fullmatch(str(value)):
            raise reader.error(value_node, f"{key}.{name}",
                               f"a tag value has up to 256 of letters, digits, spaces and _.:/=+-@, got {shown(value)}")
        tags.append((name, str(value)))
    return tuple(tags)


def _names(reader: NodeReader, node: yaml.Node, key: str, expected: str) -> tuple[str, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise reader.error(node, key, f"expected {expected}")
    items = []
    for item in node.value:
        value = reader.scalar(item, key)
        if not isinstance(value, str):
            raise reader.error(item, key, f"expected {expected}, got {shown(value)}")
        items.append(value)
    return tuple(items)


def _policy(reader: NodeReader, node: yaml.Node | None, key: str) -> str | None:
    """An inline policy: a YAML mapping, or a JSON document as text; sent as packed JSON."""
    if node is None:
        return None
    if isinstance(node, yaml.MappingNode):
        reader.mapping(node, key)  # refuses duplicate and non-text keys, with their lines
        try:
            document = reader.loader.construct_object(node, deep=True) if reader.loader is not None else None
        except (yaml.YAMLError, ValueError, LookupError, ArithmeticError, AttributeError, TypeError):
            raise reader.error(node, key, "holds a value YAML cannot read as JSON; quote it") from None
    else:
        text = reader.scalar(node, key)
        if not isinstance(text, str):
            raise reader.error(node, key, f"expected a policy document (a mapping, or JSON text), got {shown(text)}")
        try:
            document = json.loads(text)
        except ValueError as e:
            raise reader.error(node, key, f"is not valid JSON: {e}") from None
    if not isinstance(document, dict):
        raise reader.error(node, key, "expected a policy document: a JSON object like "
                                      '{"Version": "2012-10-17", "Statement": [...]}')
    try:
        packed = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise reader.error(node, key, "holds a value JSON cannot carry (a date, a number like .inf); "
                                      "quote it") from None
    if len(packed) > MAX_POLICY_CHARS:
        raise reader.error(node, key, f"is {len(packed)} characters as packed JSON (no whitespace); AWS takes an "
                                      f"inline session policy of at most {MAX_POLICY_CHARS}: shorten it, or move "
                                      "statements into a managed policy listed in policy_arns")
    return packed
