"""Reading a ``multipart/form-data`` upload with its size capped while it streams.

FastAPI's ``UploadFile`` spools the whole body before the route runs, so a 10 GB upload would be
written to disk before anything could refuse it. Here the body is fed chunk by chunk to
python-multipart's streaming parser and the request is refused with :class:`PayloadTooLarge` as soon as
the document (or the body as a whole) passes the cap; a declared ``Content-Length`` above the cap is
refused before a byte is read.

Form fields: ``file`` (required, the document) and ``name`` (optional, the name to record instead of the
file's own name). File names are metadata only; they never become paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import BadRequest, PayloadTooLarge

#: Bytes of multipart framing (boundaries, part headers, small fields) allowed on top of the document.
FRAMING_ALLOWANCE = 64 * 1024
MAX_PARTS = 8
MAX_FIELD_BYTES = 4096


@dataclass
class Upload:
    """A parsed upload: the document's bytes, its declared name and type, and the text fields."""

    data: bytes
    filename: str
    content_type: str
    fields: dict[str, str] = field(default_factory=dict)


class _Collector:
    """python-multipart callbacks that gather parts, counting the file's bytes as they arrive."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts = 0
        self.too_large = False
        self.error: str | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[str, bytes] = {}
        self._buffer = bytearray()
        self._name: str | None = None
        self._filename: str | None = None
        self.upload: Upload | None = None
        self.fields: dict[str, str] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            self.error = f"at most {MAX_PARTS} form parts are accepted"
        self._headers, self._buffer, self._name, self._filename = {}, bytearray(), None, None
        self._field = self._value = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = bytes(self._value)
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            self.error = "each form part needs 'Content-Disposition: form-data; name=...'"
            return
        self._name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            self._filename = params[b"filename"].decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error or self.too_large:
            return
        limit = self.max_bytes if self._name == "file" else MAX_FIELD_BYTES
        if len(self._buffer) + (end - start) > limit:
            if self._name == "file":
                self.too_large = True
            else:
                self.error = f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes"
            self._buffer = bytearray()
            return
        self._buffer += data[start:end]

    def on_part_end(self) -> None:
        if self.error or self.too_large or self._name is None:
            return
        if self._name == "file":
            if self.upload is not None:
                self.error = "send exactly one 'file' part"
                return
            ctype = self._headers.get("content-type", b"application/octet-stream").decode("utf-8", "replace")
            self.upload = Upload(bytes(self._buffer), self._filename or "upload", ctype)
        else:
            self.fields[self._name] = bytes(self._buffer).decode("utf-8", "replace")
        self._buffer = bytearray()


async def read_upload(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    max_bytes: int,
) -> Upload:
    """Parse a multipart upload, refusing it as soon as it is too large.

    Args:
        content_type: the request's ``Content-Type`` (must be ``multipart/form-data`` with a boundary).
        content_length: the request's ``Content-Length`` header, if any.
        body: the request body as it streams in (``request.stream()``).
        max_bytes: the largest document accepted.

    Returns:
        The document and the form's text fields.

    Raises:
        PayloadTooLarge: the declared length, the body or the document passed the cap.
        BadRequest: not a multipart form, malformed framing, or no ``file`` part.
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadRequest("send the document as multipart/form-data with a 'file' part")
    body_cap = max_bytes + FRAMING_ALLOWANCE
    if content_length:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if declared > body_cap:
            raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
    collector = _Collector(max_bytes)
    try:
        parser = MultipartParser(params[b"boundary"], collector.callbacks())  # type: ignore[arg-type]
    except FormParserError as exc:
        raise BadRequest(f"malformed multipart form: {exc}") from None
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > body_cap:
            raise PayloadTooLarge(f"the upload passed the limit of {max_bytes} bytes")
        try:
            parser.write(chunk)
        except FormParserError as exc:
            raise BadRequest(f"malformed multipart form: {exc}") from None
        if collector.too_large:
            raise PayloadTooLarge(f"the document passed the limit of {max_bytes} bytes")
        if collector.error:
            raise BadRequest(collector.error)
    try:
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"malformed multipart form: {exc}") from None
    if collector.error:
        raise BadRequest(collector.error)
    if collector.upload is None:
        raise BadRequest("the form has no 'file' part")
    collector.upload.fields = collector.fields
    return collector.upload
