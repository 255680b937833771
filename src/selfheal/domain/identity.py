"""People and programs by name: when two spellings name the same one."""

from __future__ import annotations

import unicodedata


def canonical_identity(identity: str) -> str:
    """The form in which two spellings of one identity compare equal.

    Unicode NFKC (so look-alike compatibility forms fold together), surrounding white space
    removed, case folded: "mallory", "Mallory " and the name in full-width letters are one
    person, which is what a two-person rule must count.
    """
    return unicodedata.normalize("NFKC", identity).strip().casefold()
