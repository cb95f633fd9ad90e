"""The inputs and outputs an ONNX file declares, read straight from its protobuf bytes.

Registration checks a model's metadata against its graph in the api function, which has
neither onnx nor onnxruntime (nor numpy): this reader walks the protobuf wire format for the
few fields it needs (ModelProto.graph → GraphProto.input/output/initializer names →
ValueInfoProto.type.tensor_type.{elem_type, shape}) and skips everything else without copying
it, so a 200 MB file's weights are never parsed. The field numbers are onnx.proto3's.
"""

from __future__ import annotations

from dataclasses import dataclass

# onnx.TensorProto.DataType values a model's image input may take, by name.
ELEM_TYPES = {1: "float", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 11: "double", 16: "bfloat16"}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class NotOnnx(ValueError):
    """The bytes are not an ONNX ModelProto (or are truncated)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    elem_type: str  # "float", "uint8", … ("unknown" when the file does not say)
    shape: tuple[int | str | None, ...] | None  # int: fixed, str: a named dynamic dim, None: unnamed; None: no shape

    def dims_text(self) -> str:
        if self.shape is None:
            return "of unknown shape"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class GraphSignature:
    inputs: tuple[TensorInfo, ...]  # graph inputs that are not initializers: what a caller feeds
    outputs: tuple[TensorInfo, ...]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise NotOnnx("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise NotOnnx("varint too long")


def _fields(buf: memoryview):
    """(field number, wire type, value) of one message: ints for varints, memoryviews for the rest."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise NotOnnx("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise NotOnnx("truncated field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if pos + size > len(buf):
                raise NotOnnx("truncated field")
            yield number, wire, buf[pos : pos + size]
            pos += size
        else:
            raise NotOnnx(f"wire type {wire} is not protobuf3")


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", "replace")


def _dim(buf: memoryview) -> int | str | None:
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:  # dim_value
            return int(value) if value < 1 << 62 else None
        if number == 2 and wire == _LEN:  # dim_param
            return _text(value) or None
    return None


def _value_info(buf: memoryview) -> TensorInfo:
    name, elem_type, shape = "", "unknown", None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _LEN:
            name = _text(value)
        elif number == 2 and wire == _LEN:  # TypeProto
            for t_number, t_wire, t_value in _fields(value):
                if t_number == 1 and t_wire == _LEN:  # tensor_type
                    for tt_number, tt_wire, tt_value in _fields(t_value):
                        if tt_number == 1 and tt_wire == _VARINT:
                            elem_type = ELEM_TYPES.get(int(tt_value), f"type {tt_value}")
                        elif tt_number == 2 and tt_wire == _LEN:  # TensorShapeProto
                            shape = tuple(_dim(d) for n, w, d in _fields(tt_value) if n == 1 and w == _LEN)
    return TensorInfo(name, elem_type, shape)


def _initializer_name(buf: memoryview) -> str | None:
    for number, wire, value in _fields(buf):
        if number == 8 and wire == _LEN:  # TensorProto.name
            return _text(value)
    return None


def signature(data: bytes | memoryview) -> GraphSignature:
    """The graph's fed inputs and its outputs; raises NotOnnx for bytes that are not a model."""
    buf = memoryview(data)
    graph = None
    has_ir_version = False
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:
            has_ir_version = True
        elif number == 7 and wire == _LEN:
            graph = value
    if graph is None or not has_ir_version:
        raise NotOnnx("no graph in the file")
    inputs, outputs, initializers = [], [], set()
    for number, wire, value in _fields(graph):
        if wire != _LEN:
            continue
        if number == 11:
            inputs.append(_value_info(value))
        elif number == 12:
            outputs.append(_value_info(value))
        elif number == 5:
            initializers.add(_initializer_name(value))
    # Before IR 4 initializers were listed among the inputs too; they are not fed.
    fed = tuple(i for i in inputs if i.name not in initializers)
    if not fed or not outputs:
        raise NotOnnx("the graph declares no inputs or no outputs")
    return GraphSignature(fed, tuple(outputs))
