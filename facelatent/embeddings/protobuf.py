"""A small protobuf wire-format reader for TensorFlow GraphDef files (no tensorflow, no protobuf).

Only the messages a frozen inference graph needs are decoded:
GraphDef.node -> NodeDef(name, op, input, device, attr) -> AttrValue (s, i, f, b, type, shape,
tensor, list) -> TensorProto (dtype, shape, tensor_content or the typed *_val fields).
Unknown fields are skipped, as protobuf itself does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facelatent.errors import InputFileError

# TensorFlow DataType enum values -> numpy dtypes (types.proto).
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    9: np.dtype("<i8"),
    10: np.dtype("bool"),
    17: np.dtype("<u2"),
    19: np.dtype("<f2"),
    22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}
DT_STRING = 7

WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """The bytes are not a well-formed message of the expected kind."""


@dataclass
class AttrValue:
    """One NodeDef attribute: `kind` is the AttrValue oneof name ('s', 'i', 'f', 'b', 'type',
    'shape', 'tensor', 'list', ...), `value` the decoded Python/numpy value."""

    kind: str
    value: Any


@dataclass
class NodeDef:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    device: str = ""
    attr: dict[str, AttrValue] = field(default_factory=dict)

    def attr_value(self, key: str, default: Any = None) -> Any:
        return self.attr[key].value if key in self.attr else default


# ---------------------------------------------------------------------------------------------
# Wire level
# ---------------------------------------------------------------------------------------------


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; returns (value, next position)."""
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) for each field of one message.

    Varints come back as int, fixed32/64 as raw 4/8-byte memoryviews, length-delimited as memoryview.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == WIRE_FIXED64:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == WIRE_BYTES:
            size, pos = read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == WIRE_FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        else:  # groups (3/4) are not used by TensorFlow's protos
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
        if pos > end:
            raise ProtobufError(f"field {number} runs past the end of its message")
        yield number, wire, value


def signed64(value: int) -> int:
    """Reinterpret a varint as two's-complement int64 (protobuf int64/int32 encoding)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(wire: int, value: Any) -> list[int]:
    """A repeated varint field arrives either packed (one bytes blob) or one value per field."""
    if wire == WIRE_VARINT:
        return [signed64(value)]
    out, pos, buf = [], 0, value
    while pos < len(buf):
        v, pos = read_varint(buf, pos)
        out.append(signed64(v))
    return out


def packed_fixed(wire: int, value: Any, dtype: str) -> np.ndarray:
    """A repeated fixed32/fixed64 field, packed or not, as a numpy array."""
    return np.frombuffer(bytes(value), dtype=np.dtype(dtype))


def text(value: memoryview) -> str:
    return bytes(value).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# TensorFlow messages
# ---------------------------------------------------------------------------------------------


def parse_shape(buf: memoryview) -> tuple[int, ...] | None:
    """TensorShapeProto -> tuple of sizes (-1 for unknown); None for unknown rank."""
    dims: list[int] = []
    for number, _wire, value in iter_fields(buf):
        if number == 2:
            size = 0
            for n2, _w2, v2 in iter_fields(value):
                if n2 == 1:
                    size = signed64(v2)
            dims.append(size)
        elif number == 3 and value:
            return None
    return tuple(dims)


# TensorProto typed value fields: number -> (numpy dtype, wire decoder kind)
_TENSOR_VALUE_FIELDS = {5: "<f4", 6: "<f8", 7: "int", 10: "int", 11: "int", 13: "int"}


def parse_tensor(buf: memoryview) -> np.ndarray | list[bytes]:
    """TensorProto -> numpy array with its shape (string tensors come back as a list of bytes)."""
    dtype_enum, shape, content = 1, (), None
    values: list[np.ndarray] = []
    strings: list[bytes] = []
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dtype_enum = value
        elif number == 2:
            shape = parse_shape(value) or ()
        elif number == 4:
            content = bytes(value)
        elif number == 8:
            strings.append(bytes(value))
        elif number in _TENSOR_VALUE_FIELDS:
            kind = _TENSOR_VALUE_FIELDS[number]
            if kind == "int":
                values.append(np.asarray(packed_varints(wire, value), dtype=np.int64))
            else:
                values.append(packed_fixed(wire, value, kind))
    if dtype_enum == DT_STRING:
        return strings
    if dtype_enum not in TF_DTYPES:
        raise ProtobufError(f"unsupported tensor dtype enum {dtype_enum}")
    dtype = TF_DTYPES[dtype_enum]
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        flat = np.frombuffer(content, dtype=dtype)
    elif values:
        flat = np.concatenate(values)
        if dtype_enum == 19:  # half_val holds the raw 16-bit patterns in int32 slots
            flat = flat.astype(np.uint16).view(np.float16)
        flat = flat.astype(dtype)
    else:
        flat = np.zeros(0, dtype=dtype)
    if flat.size == count:
        return flat.reshape(shape).copy()
    if flat.size == 0:
        return np.zeros(shape, dtype=dtype)
    if flat.size < count:  # TF repeats the last value to fill the shape (e.g. a splat constant)
        flat = np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype=dtype)])
        return flat.reshape(shape)
    raise ProtobufError(f"tensor has {flat.size} values but shape {shape} needs {count}")


def parse_list(buf: memoryview) -> list[Any]:
    """AttrValue.ListValue -> Python list of whichever repeated field is present."""
    out: list[Any] = []
    for number, wire, value in iter_fields(buf):
        if number == 2:
            out.append(bytes(value))
        elif number in (3, 6):
            out.extend(packed_varints(wire, value))
        elif number == 4:
            out.extend(packed_fixed(wire, value, "<f4").tolist())
        elif number == 5:
            out.extend(bool(v) for v in packed_varints(wire, value))
        elif number == 7:
            out.append(parse_shape(value))
        elif number == 8:
            out.append(parse_tensor(value))
    return out


def parse_attr_value(buf: memoryview) -> AttrValue:
    for number, _wire, value in iter_fields(buf):
        if number == 1:
            return AttrValue("list", parse_list(value))
        if number == 2:
            return AttrValue("s", bytes(value))
        if number == 3:
            return AttrValue("i", signed64(value))
        if number == 4:
            return AttrValue("f", struct.unpack("<f", bytes(value))[0])
        if number == 5:
            return AttrValue("b", bool(value))
        if number == 6:
            return AttrValue("type", value)
        if number == 7:
            return AttrValue("shape", parse_shape(value))
        if number == 8:
            return AttrValue("tensor", parse_tensor(value))
        if number == 9:
            return AttrValue("placeholder", text(value))
        if number == 10:
            return AttrValue("func", bytes(value))
    return AttrValue("none", None)


def parse_node(buf: memoryview) -> NodeDef:
    node = NodeDef(name="", op="")
    for number, _wire, value in iter_fields(buf):
        if number == 1:
            node.name = text(value)
        elif number == 2:
            node.op = text(value)
        elif number == 3:
            node.inputs.append(text(value))
        elif number == 4:
            node.device = text(value)
        elif number == 5:  # map<string, AttrValue> entry: key = 1, value = 2
            key, attr = "", AttrValue("none", None)
            for n2, _w2, v2 in iter_fields(value):
                if n2 == 1:
                    key = text(v2)
                elif n2 == 2:
                    attr = parse_attr_value(v2)
            node.attr[key] = attr
    return node


def parse_graph_def(data: bytes) -> list[NodeDef]:
    """GraphDef bytes -> its nodes in file order (the function library and versions are skipped)."""
    buf = memoryview(data)
    return [parse_node(value) for number, wire, value in iter_fields(buf) if number == 1 and wire == WIRE_BYTES]


def read_graph_def(path: str | Path) -> list[NodeDef]:
    """Read a binary GraphDef (`.pb`) file; bad input gets a one-line error naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "GraphDef file does not exist")
    try:
        nodes = parse_graph_def(path.read_bytes())
    except (ProtobufError, UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(path, f"not a readable TensorFlow GraphDef ({exc})") from exc
    if not nodes or any(not n.name or not n.op for n in nodes):
        raise InputFileError(path, "not a TensorFlow GraphDef (no named nodes found)")
    return nodes
