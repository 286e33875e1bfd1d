"""A problem found in an asset, named by file and JSON path so a person can go straight to it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    file: str  # the asset file (or "<input>" for a body given on the command line)
    json_path: str  # e.g. "$.pivot.group_by.user.terms.size"
    rule: str  # a short stable id, e.g. "transform.group_by.unknown_parameter"
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.json_path}: {self.message} [{self.rule}]"
