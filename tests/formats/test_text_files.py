"""The one reader of users' files: size limits, UTF-8 with the bad byte's place, OS errors."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfheal.domain.errors import ConfigError
from selfheal.formats import text_files

SMALL = text_files.FileKind("test file", 64)


def refusal(path: Path, *, kind: text_files.FileKind = SMALL) -> str:
    with pytest.raises(ConfigError) as raised:
        text_files.read_text(path, kind=kind)
    return str(raised.value)


def test_a_utf8_file_is_read_as_text(tmp_path: Path) -> None:
    """Text in UTF-8, non-ASCII characters included, comes back as written."""
    path = tmp_path / "f.yaml"
    path.write_text("name: café\n", encoding="utf-8")
    assert text_files.read_text(path, kind=SMALL) == "name: café\n"


def test_a_byte_order_mark_is_accepted_and_dropped(tmp_path: Path) -> None:
    """Editors on Windows may start a UTF-8 file with a BOM; the text starts after it."""
    path = tmp_path / "f.yaml"
    path.write_bytes(codecs.BOM_UTF8 + b"a: 1\n")
    assert text_files.read_text(path, kind=SMALL) == "a: 1\n"


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    """The limit is the largest size allowed, not the first refused."""
    path = tmp_path / "f.yaml"
    path.write_bytes(b"x" * SMALL.limit)
    assert len(text_files.read_text(path, kind=SMALL)) == SMALL.limit


def test_a_file_over_the_limit_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    """A huge sparse file is refused from its size alone; reading it would never finish here."""
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024**3)  # 64 GiB of holes: no disk used, too much to read
    message = refusal(path, kind=text_files.CONFIG)
    assert message == (
        f"{path}: the file is 68,719,476,736 bytes, over the 4 MiB limit for a config file"
    )


def test_a_file_without_a_size_is_refused_after_reading_just_past_the_limit() -> None:
    """A device (or a file growing while read) is cut off one byte past the limit."""
    message = refusal(Path("/dev/zero"))
    assert message == (
        "/dev/zero: the file is more than 64 bytes, over the 64 bytes limit for a test file"
    )


def test_a_limit_in_whole_mebibytes_is_written_in_mib(tmp_path: Path) -> None:
    """Errors say `1 MiB`, as the documentation does, not 1,048,576 bytes."""
    path = tmp_path / "runbook.yaml"
    with path.open("wb") as handle:
        handle.truncate(text_files.RUNBOOK.limit + 1)
    assert refusal(path, kind=text_files.RUNBOOK).endswith(
        "the file is 1,048,577 bytes, over the 1 MiB limit for a runbook"
    )


def test_a_byte_that_is_not_utf8_is_named_at_its_line_and_column(tmp_path: Path) -> None:
    """Columns count characters: two two-byte letters before the bad byte are two columns."""
    path = tmp_path / "f.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: \xc3\xa9\xc3\xa9\xff\n")
    assert refusal(path) == f"{path}:3:6: not UTF-8 (byte 0xff); save the file as UTF-8"


def test_latin1_text_is_named_at_its_first_accented_letter(tmp_path: Path) -> None:
    """`café` saved as Latin-1 is refused at the é, byte 0xe9."""
    path = tmp_path / "f.yaml"
    path.write_bytes(b"caf\xe9: 1\n")
    assert refusal(path).startswith(f"{path}:1:4: not UTF-8 (byte 0xe9)")


def test_the_column_after_a_byte_order_mark_does_not_count_it(tmp_path: Path) -> None:
    """The BOM is invisible in an editor, so it is not a column either."""
    path = tmp_path / "f.yaml"
    path.write_bytes(codecs.BOM_UTF8 + b"ab\x80")
    assert refusal(path).startswith(f"{path}:1:3: not UTF-8 (byte 0x80)")


def test_a_character_cut_off_at_the_end_is_named_where_it_starts(tmp_path: Path) -> None:
    """The first byte of an incomplete sequence is the one reported."""
    path = tmp_path / "f.yaml"
    path.write_bytes(b"x\n\xc3")
    assert refusal(path).startswith(f"{path}:2:1: not UTF-8 (byte 0xc3)")


def test_a_missing_file_is_named_with_the_reason(tmp_path: Path) -> None:
    """The OS's reason, in the error's words, after the file and what it was to be."""
    path = tmp_path / "missing.yaml"
    assert refusal(path) == f"{path}: cannot read the test file: no such file or directory"


def test_a_directory_is_refused_as_one(tmp_path: Path) -> None:
    """A directory given where a file is expected says so."""
    assert refusal(tmp_path) == f"{tmp_path}: cannot read the test file: is a directory"


def test_other_os_errors_are_mapped_too(tmp_path: Path) -> None:
    """A path through a file (ENOTDIR) is one more OSError, refused the same way."""
    (tmp_path / "file").write_text("x", encoding="utf-8")
    path = tmp_path / "file" / "f.yaml"
    with pytest.raises(ConfigError) as raised:
        text_files.read_bytes(path, kind=SMALL)
    assert str(raised.value) == f"{path}: cannot read the test file: not a directory"
    assert isinstance(raised.value.__cause__, OSError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    """Permission denied is reported, not raised as PermissionError."""
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    path.chmod(0)
    assert refusal(path) == f"{path}: cannot read the test file: permission denied"


def test_bytes_are_returned_as_on_disk_for_hashing(tmp_path: Path) -> None:
    """`read_bytes` keeps a BOM and any encoding: policy bundles hash what is on disk."""
    path = tmp_path / "p.rego"
    content = codecs.BOM_UTF8 + b"package p\n"
    path.write_bytes(content)
    assert text_files.read_bytes(path, kind=SMALL) == content


def test_every_kind_has_a_limit_of_a_few_mebibytes() -> None:
    """The shipped limits are far above real files (kilobytes) and at most 4 MiB."""
    kinds = [
        text_files.CONFIG,
        text_files.GUARDRAILS,
        text_files.RULES,
        text_files.RULE_TESTS,
        text_files.RUNBOOK,
        text_files.SCENARIO,
        text_files.REGO,
    ]
    assert all(text_files.MIB <= kind.limit <= 4 * text_files.MIB for kind in kinds)
    assert len({kind.name for kind in kinds}) == len(kinds)


@given(
    # No surrogates (they do not encode), and no leading BOM (it is dropped, not a column).
    before=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40).filter(
        lambda text: not text.startswith("\ufeff")
    ),
    # Bytes that never begin a valid sequence, whatever follows them.
    bad=st.sampled_from([b"\x80", b"\xbf", b"\xc0", b"\xc1", b"\xf5", b"\xff"]),
    after=st.binary(max_size=8),
)
def test_the_reported_place_is_the_first_bad_bytes_line_and_column(
    before: str, bad: bytes, after: bytes
) -> None:
    """Whatever valid text precedes the bad byte, line and column point just past it."""
    with pytest.raises(ConfigError) as raised:
        text_files.decode(before.encode() + bad + after, source="f")
    location = raised.value.location
    assert location is not None
    lines = before.split("\n")
    assert (location.line, location.column) == (len(lines), len(lines[-1]) + 1)
    assert f"(byte 0x{bad[0]:02x})" in str(raised.value)
