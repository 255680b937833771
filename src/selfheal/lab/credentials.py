"""The lab's callers: a token per role, written to a token file the controllers read.

Every world the lab builds runs with `api.auth` on, as production should: alerts are sent
with a `sender` token, reads with a `viewer` token, and verdicts by two distinct approvers.
The tokens are fresh random ones for each world, and only their digests reach the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from selfheal.api.auth import new_token, token_digest


@dataclass(frozen=True, slots=True)
class LabCredentials:
    """Bearer tokens for the lab's callers, by what they do."""

    sender: str = field(default_factory=new_token)
    viewer: str = field(default_factory=new_token)
    approver: str = field(default_factory=new_token)
    second_approver: str = field(default_factory=new_token)

    def write(self, path: Path) -> Path:
        """The token file (digests, identities, roles) for a controller's `api.auth`."""
        entries = [
            ("alertmanager", ["sender"], self.sender),
            ("dashboard", ["viewer"], self.viewer),
            ("alice", ["approver"], self.approver),
            ("bob", ["approver"], self.second_approver),
        ]
        document = {
            "tokens": [
                {"identity": identity, "roles": roles, "sha256": token_digest(token)}
                for identity, roles, token in entries
            ]
        }
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    @staticmethod
    def header(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}
