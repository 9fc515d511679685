"""ALMA uid spellings: the archive form `uid://A002/X10d9399/Xae5e` and the on-disk `uid___A002_X10d9399_Xae5e`."""

from __future__ import annotations

import re

_ON_DISK = re.compile(r"^uid___(A\d{3})_(X[0-9a-fA-F]+)_(X[0-9a-fA-F]+)$")


def canonical_uid(uid: str) -> str:
    """The archive spelling of an EB uid, so both spellings of one EB name the same row."""
    clean = uid.strip()
    match = _ON_DISK.match(clean)
    if match:
        return "uid://{}/{}/{}".format(*match.groups())
    return clean
