"""A finding (ok, warn, fail; what was found; how to fix it) and the two ways doctor prints findings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["LABELS", "Finding", "Level", "as_json", "count", "fail", "failed", "format_text", "ok", "warn"]

Level = Literal["ok", "warn", "fail"]
LABELS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    message: str
    fix: str | None = None  # None where the message, from credd's own errors, already says what to do


def ok(topic: str, message: str) -> Finding:
    return Finding("ok", topic, message)


def warn(topic: str, message: str, fix: str | None = None) -> Finding:
    return Finding("warn", topic, message, fix)


def fail(topic: str, message: str, fix: str | None = None) -> Finding:
    return Finding("fail", topic, message, fix)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def failed(findings: list[Finding]) -> bool:
    return any(finding.level == "fail" for finding in findings)


def format_text(findings: list[Finding]) -> str:
    """One line a finding, its fix indented under it, and a count at the end."""
    lines = []
    for finding in findings:
        lines.append(f"{LABELS[finding.level]} {finding.topic}: {finding.message}")
        if finding.fix:
            lines.append(f"     fix: {finding.fix}")
    failures = sum(finding.level == "fail" for finding in findings)
    warnings = sum(finding.level == "warn" for finding in findings)
    if failures or warnings:
        lines.append(f"{failures} failed, {count(warnings, 'warning')}")
    else:
        lines.append("everything is ok")
    return "\n".join(lines)


def as_json(findings: list[Finding]) -> dict:
    return {"ok": not failed(findings), "findings": [asdict(finding) for finding in findings]}
