"""Just enough DER to write what ``cryptography`` has no builder for.

Used for Sigstore's UTF8String certificate extensions, the SCT-list extension and the
RFC 3161 timestamp response; reading DER is left to ``cryptography`` and
``rfc3161_client``.
"""

from __future__ import annotations

from datetime import datetime, timezone


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    # DER orders SET OF members by their encodings.
    return tlv(0x31, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    return tlv(0x02, raw)


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def utf8_string(value: str) -> bytes:
    return tlv(0x0C, value.encode())


def null() -> bytes:
    return tlv(0x05, b"")


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def generalized_time(when: datetime) -> bytes:
    return tlv(0x18, when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ").encode())


def explicit(number: int, inner: bytes) -> bytes:
    """A constructed context-specific ``[number] EXPLICIT`` wrapper."""
    return tlv(0xA0 | number, inner)


def implicit_constructed(number: int, encoded: bytes) -> bytes:
    """Re-tag a constructed element (SET, SEQUENCE) as ``[number] IMPLICIT``."""
    _tag, content = split_tlv(encoded)
    return tlv(0xA0 | number, content)


def split_tlv(encoded: bytes) -> tuple[int, bytes]:
    """The tag and content of one complete DER element."""
    tag, content, rest = _next(encoded)
    if rest:
        raise ValueError("trailing bytes after a DER element")
    return tag, content


def elements(content: bytes) -> list[tuple[int, bytes, bytes]]:
    """The members of a constructed element's content: ``(tag, content, encoding)`` each."""
    out = []
    while content:
        tag, inner, rest = _next(content)
        out.append((tag, inner, content[: len(content) - len(rest)]))
        content = rest
    return out


def _next(data: bytes) -> tuple[int, bytes, bytes]:
    if len(data) < 2 or data[0] & 0x1F == 0x1F:
        raise ValueError("truncated DER or a multi-byte tag")
    first = data[1]
    if first < 0x80:
        start, n = 2, first
    else:
        width = first & 0x7F
        start, n = 2 + width, int.from_bytes(data[2 : 2 + width], "big")
    if first == 0x80 or start + n > len(data):
        raise ValueError("indefinite or overrunning DER length")
    return data[0], data[start : start + n], data[start + n :]
