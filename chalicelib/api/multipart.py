"""multipart/form-data bodies (the original `curl -F "file=@image.jpg"` upload), via python-multipart.

python-multipart is imported by the calls that parse a body: app.py's blueprints import this
module, and the ingest and worker functions never parse a form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalice.app import Request


class MultipartError(ValueError):
    pass


@dataclass
class Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)


def _disposition(header_value: bytes) -> tuple[str, str | None]:
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(header_value)
    filename = options.get(b"filename")
    return options.get(b"name", b"").decode("utf-8", "replace"), (
        filename.decode("utf-8", "replace") if filename is not None else None
    )


def request_bytes(request: Request) -> bytes:
    """The body as bytes: Chalice declares `raw_body` as `str | bytes`, though it encodes a str body itself."""
    raw = request.raw_body
    return raw if isinstance(raw, bytes) else raw.encode("utf-8")


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part]:
    """Parts by field name (the first of each name wins)."""
    from python_multipart import MultipartParser
    from python_multipart.multipart import parse_options_header

    mime, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise MultipartError("expected multipart/form-data with a boundary")
    parts: dict[str, Part] = {}
    current: dict = {}
    header: dict = {}

    def on_part_begin():
        current["part"] = Part()

    def on_header_field(data, start, end):
        header["field"] = header.get("field", b"") + data[start:end]

    def on_header_value(data, start, end):
        header["value"] = header.get("value", b"") + data[start:end]

    def on_header_end():
        name, value = header.pop("field", b"").lower(), header.pop("value", b"")
        part = current["part"]
        if name == b"content-disposition":
            part.name, part.filename = _disposition(value)
        elif name == b"content-type":
            part.content_type = value.decode("latin-1").strip()

    def on_part_data(data, start, end):
        current["part"].data += data[start:end]

    def on_part_end():
        part = current.pop("part")
        parts.setdefault(part.name, part)

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several error types for malformed bodies
        raise MultipartError(f"malformed multipart body: {exc}") from None
    return parts
