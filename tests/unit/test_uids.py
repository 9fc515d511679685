"""Both ALMA uid spellings name the same EB."""

import pytest

from qa0_label.store.uids import canonical_uid


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("uid___A002_X10d9399_Xae5e", "uid://A002/X10d9399/Xae5e"),
        ("  uid://A002/X10d9399/Xae5e ", "uid://A002/X10d9399/Xae5e"),
        ("uid___A002_X10d9399", "uid___A002_X10d9399"),  # not an EB uid: kept as given
        ("my-own-id", "my-own-id"),
    ],
)
def test_canonical_uid(raw: str, expected: str) -> None:
    assert canonical_uid(raw) == expected
