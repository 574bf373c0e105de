"""An input's content in verified pieces: nothing of a damaged compressed unit is trusted.

A compressed file is a sequence of units, each with its own checksum: gzip members (CRC-32),
xz and bzip2 streams (their checks), zstd frames (the content checksum, when written). The
checksum is only known at the unit's end, after its data came out, so a damaged unit can
yield altered bytes that still read as JSON. ``chunks`` therefore marks where each unit
verified; the reader keeps what came before the last mark when ``Damaged`` is raised.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterator
from typing import IO, Any

READ = 1 << 20  # compressed bytes read at a time
OUT = 1 << 20  # most decompressed bytes a call returns (a 1000:1 bomb stays bounded)
MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
UNIT = {"gzip": "gzip member", "bzip2": "bzip2 stream", "xz": "xz stream", "zstd": "zstd frame"}


class Damaged(Exception):
    """The unit starting at compressed ``offset`` did not verify (or the file is cut)."""

    def __init__(self, offset: int, unit: str, why: str) -> None:
        super().__init__(f"the {unit} at offset {offset:,} did not verify: {why}")
        self.offset = offset


def detect_compression(head: bytes) -> str:
    """``gzip``, ``bzip2``, ``xz``, ``zstd`` by the magic bytes at the start, else ``plain``."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "plain"


def _zstd():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # the same module, for Python < 3.14
    return zstd


def _decompressor(compression: str) -> Any:
    if compression == "gzip":
        return zlib.decompressobj(31)  # checks the member's CRC-32 and length at its end
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    if compression == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    return _zstd().ZstdDecompressor()


def _errors() -> tuple[type[BaseException], ...]:
    return (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, _zstd().ZstdError)


def _pieces(d: Any, data: bytes) -> Iterator[bytes]:
    """Everything ``d`` makes of ``data``, at most OUT bytes at a time."""
    if isinstance(d, type(zlib.decompressobj())):
        out = d.decompress(data, OUT)
        yield out
        while d.unconsumed_tail and not d.eof:
            yield d.decompress(d.unconsumed_tail, OUT)
        return
    yield d.decompress(data, OUT)
    while not d.eof and not d.needs_input:
        yield d.decompress(b"", OUT)


def chunks(f: IO[bytes], compression: str) -> Iterator[tuple[bytes, bool]]:
    """(decompressed bytes, verified) of ``f``: ``verified`` true means everything yielded so
    far checked out. Raises Damaged at a unit that fails its check or is cut short."""
    if compression == "plain":
        while block := f.read(READ):
            yield block, True
        return
    unit = UNIT[compression]
    d, fresh = _decompressor(compression), True
    offset = start = 0  # compressed offsets: of ``data``'s first byte, of the current unit
    data = f.read(READ)
    try:
        while data:
            if fresh:  # zero bytes between units are padding (xz allows it, tar adds it)
                stripped = data.lstrip(b"\0")
                offset += len(data) - len(stripped)
                start, data = offset, stripped
                if not data:
                    data = f.read(READ)
                    continue
                fresh = False
            for out in _pieces(d, data):
                if out:
                    yield out, False
            if d.eof:
                yield b"", True
                rest = d.unused_data
                offset += len(data) - len(rest)
                d, fresh, data = _decompressor(compression), True, rest or f.read(READ)
                continue
            offset += len(data)
            data = f.read(READ)
        if not fresh:
            raise EOFError("the file ends inside it (cut short)")
    except _errors() as e:
        raise Damaged(start, unit, f"{type(e).__name__}: {e}") from None
