"""The protobuf wire format, read by hand: enough to decode remote-write's `WriteRequest`.

Remote-write's messages are three levels of plain fields, so a reader of tags, varints,
fixed64 doubles and length-delimited bytes is shorter and faster than generated code, and
needs no copy of Prometheus' `.proto` files. It follows protobuf's decoding rules:

- a field's key is a varint `number << 3 | wire type`; field number 0 is invalid;
- unknown fields of every wire type (including the deprecated groups) are skipped;
- a varint is at most 10 bytes, and its value is taken modulo 2**64 as protobuf does;
- anything that runs past the end of its enclosing message is truncation, an error.

A field number the caller knows but with another wire type is an error here (protobuf itself
would keep it as an unknown field); `expect` checks that.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_WIRE_TYPE_NAMES = {
    VARINT: "varint",
    FIXED64: "fixed64",
    LENGTH_DELIMITED: "length-delimited",
    START_GROUP: "start-group",
    END_GROUP: "end-group",
    FIXED32: "fixed32",
}
# A 64-bit value needs ceil(64 / 7) = 10 groups of seven bits.
_MAX_VARINT_BYTES = 10
_UINT64 = (1 << 64) - 1
# Groups nest like messages; protobuf's own parsers stop at a recursion depth of 100.
_MAX_GROUP_DEPTH = 100
_DOUBLE = struct.Struct("<d")


class WireError(ValueError):
    """The bytes are not valid protobuf.

    `offset` is where in the message reading failed and `number` the field being read, when
    its tag was read whole: a caller that knows the schema can then name the field.
    """

    def __init__(
        self, message: str, *, offset: int | None = None, number: int | None = None
    ) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset
        self.number = number


@dataclass(frozen=True, slots=True)
class Field:
    """One field as read from the wire: an int for varint/fixed, bytes for length-delimited."""

    number: int
    wire_type: int
    value: int | bytes

    def expect(self, wire_type: int) -> None:
        """Raise unless the field has the wire type its schema gives it."""
        if self.wire_type != wire_type:
            raise WireError(
                f"field {self.number} has wire type {wire_type_name(self.wire_type)}, "
                f"expected {wire_type_name(wire_type)}"
            )

    def as_int64(self) -> int:
        """A varint read as a two's-complement int64 (negative numbers use all ten bytes)."""
        self.expect(VARINT)
        assert isinstance(self.value, int)
        return self.value - (1 << 64) if self.value >> 63 else self.value

    def as_double(self) -> float:
        self.expect(FIXED64)
        assert isinstance(self.value, int)
        return float(_DOUBLE.unpack(self.value.to_bytes(8, "little"))[0])

    def as_bytes(self) -> bytes:
        """A length-delimited field's bytes (a string, bytes or an embedded message)."""
        self.expect(LENGTH_DELIMITED)
        assert isinstance(self.value, bytes)
        return self.value

    def as_text(self) -> str:
        """A `string` field: UTF-8, as proto3 requires."""
        try:
            return self.as_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"field {self.number} is not valid UTF-8") from exc


def wire_type_name(wire_type: int) -> str:
    return _WIRE_TYPE_NAMES.get(wire_type, f"invalid ({wire_type})")


def encode_varint(value: int) -> bytes:
    """The varint encoding of an unsigned 64-bit value (negative int64s as two's complement)."""
    if not -(1 << 63) <= value <= _UINT64:
        raise ValueError(f"{value} does not fit in 64 bits")
    value &= _UINT64
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read a varint at `offset`: its value and the offset just after it."""
    result = 0
    shift = 0
    position = offset
    end = len(data)
    while True:
        if position >= end:
            raise WireError("truncated varint", offset=offset)
        if position - offset >= _MAX_VARINT_BYTES:
            raise WireError("varint longer than 10 bytes", offset=offset)
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _UINT64, position
        shift += 7


def iter_fields(data: bytes | memoryview) -> Iterator[Field]:
    """Every field of one message, in wire order; unknown fields are the caller's to skip."""
    view = memoryview(data)
    position = 0
    end = len(view)
    while position < end:
        field, position = _read_field(view, position, depth=0)
        if field is not None:
            yield field


def _read_field(view: memoryview, position: int, *, depth: int) -> tuple[Field | None, int]:
    """Read the field at `position`. A group is skipped whole and comes back as None."""
    start = position
    key, position = decode_varint(view, position)
    number, wire_type = key >> 3, key & 0x7
    if number == 0:
        raise WireError("field number 0 is invalid", offset=start)
    try:
        return _read_value(view, position, number=number, wire_type=wire_type, depth=depth)
    except WireError as exc:
        # Name the outermost field that failed: the caller's schema knows that one.
        exc.number = number
        raise


def _read_value(
    view: memoryview, position: int, *, number: int, wire_type: int, depth: int
) -> tuple[Field | None, int]:
    if wire_type == VARINT:
        value, position = decode_varint(view, position)
        return Field(number, wire_type, value), position
    if wire_type in {FIXED64, FIXED32}:
        width = 8 if wire_type == FIXED64 else 4
        if position + width > len(view):
            raise WireError(
                f"truncated {wire_type_name(wire_type)} field {number}", offset=position
            )
        value = int.from_bytes(view[position : position + width], "little")
        return Field(number, wire_type, value), position + width
    if wire_type == LENGTH_DELIMITED:
        length, position = decode_varint(view, position)
        if position + length > len(view):
            raise WireError(
                f"field {number} claims {length} bytes but {len(view) - position} remain",
                offset=position,
            )
        end = position + length
        return Field(number, wire_type, bytes(view[position:end])), end
    if wire_type == START_GROUP:
        return None, _skip_group(view, position, number=number, depth=depth + 1)
    if wire_type == END_GROUP:
        raise WireError(f"end of group {number} without its start", offset=position)
    raise WireError(f"invalid wire type {wire_type} for field {number}", offset=position)


def _skip_group(view: memoryview, position: int, *, number: int, depth: int) -> int:
    """Skip a (deprecated) group's fields up to its matching end-group tag."""
    if depth > _MAX_GROUP_DEPTH:
        raise WireError("groups nested too deeply", offset=position)
    while position < len(view):
        key, after = decode_varint(view, position)
        if key & 0x7 == END_GROUP:
            if key >> 3 != number:
                raise WireError(
                    f"group {number} ended by the tag of group {key >> 3}", offset=position
                )
            return after
        _, position = _read_field(view, position, depth=depth)
    raise WireError(f"truncated group {number}", offset=position)
