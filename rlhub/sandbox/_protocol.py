"""The sandbox's wire format: length-prefixed JSON frames and the strict encoding of call results.

Both sides use it: the host (``channel``, ``pool``, ``docker_backend``) imports it as
``rlhub.sandbox._protocol``; the zygote and the workspace server, which run where rlhub is not
importable, define it from the source the host ships in their config (``config.sandbox_sources``). So it
imports only the standard library, and nothing runs at import.

A frame is a 4-byte big-endian length followed by that many bytes of compact UTF-8 JSON.
"""

from __future__ import annotations

import json
import os
import struct

HEADER = struct.Struct(">I")
MAX_DEPTH = 100
"""How deeply an encoded value may nest."""
_EXACT_SCALARS = (bool, int, float, str, type(None))
_type, _repr = type, repr  # bound before any program runs: a program may rebind builtins


def encode_frame(message: dict) -> bytes:
    """Serialize one protocol message: a 4-byte big-endian length, then compact UTF-8 JSON."""
    return frame_bytes(json.dumps(message, separators=(",", ":")).encode())


def frame_bytes(payload: bytes) -> bytes:
    """Frame a payload that is already encoded."""
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Reassembles protocol messages from a byte stream that arrives in arbitrary chunks."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def pop(self) -> dict | None:
        """Return the next complete message, or None until enough bytes have arrived."""
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        end = HEADER.size + size
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        return json.loads(payload)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_exactly(fd: int, size: int) -> bytes | None:
    """Read ``size`` bytes from ``fd``; None if it ends first."""
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    """The payload of the next frame on ``fd``; None at EOF."""
    header = read_exactly(fd, HEADER.size)
    return None if header is None else read_exactly(fd, HEADER.unpack(header)[0])


def read_to_end(fd: int) -> bytes:
    """Read ``fd`` until EOF, then close it."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def encode_value(value, depth: int = 0):
    """A call's result as JSON-ready data, if it is built only of exact built-in types.

    bool, int, float, str and None stay as they are (a float that is not finite becomes
    ``{"float": repr}``); a list becomes a JSON array; a tuple, set or dict becomes ``{"tuple": [...]}``,
    ``{"set": [...]}`` or ``{"dict": [[key, value], ...]}``. Anything else, subclasses included,
    raises TypeError: an object whose comparisons lie cannot be reported.
    """
    kind = _type(value)
    if depth > MAX_DEPTH:
        raise TypeError("the result is nested too deeply")
    if kind in _EXACT_SCALARS:
        if kind is float and value - value != 0.0:
            return {"float": _repr(value)}
        return value
    if kind is list:
        return [encode_value(item, depth + 1) for item in value]
    if kind is tuple:
        return {"tuple": [encode_value(item, depth + 1) for item in value]}
    if kind is set:
        return {"set": [encode_value(item, depth + 1) for item in value]}
    if kind is dict:
        return {"dict": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(
        f"a result of type {kind.__name__} is not one of bool, int, float, str, None, list, tuple, dict, set"
    )


def decode_value(data, depth: int = 0):
    """The value ``encode_value`` encoded, rebuilt of exact built-in types; ValueError if malformed.

    The host decodes what a program reported; whatever it wrote, the result is made of bool, int,
    float, str, None, list, tuple, set and dict only.
    """
    kind = type(data)
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if kind in (bool, int, float, str, type(None)):
        return data
    if kind is list:
        return [decode_value(item, depth + 1) for item in data]
    if kind is dict and len(data) == 1:
        ((tag, body),) = data.items()
        if tag == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if type(body) is list:
            items = [decode_value(item, depth + 1) for item in body]
            try:
                if tag == "tuple":
                    return tuple(items)
                if tag == "set":
                    return set(items)
                if tag == "dict" and all(type(pair) is list and len(pair) == 2 for pair in body):
                    return {decode_value(k, depth + 1): decode_value(v, depth + 1) for k, v in body}
            except TypeError as exc:  # an unhashable set member or key
                raise ValueError(str(exc)) from None
    raise ValueError(f"not an encoded value: {str(data)[:80]}")
