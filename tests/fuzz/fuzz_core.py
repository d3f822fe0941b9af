"""The fuzzing machinery shared by every target: targets, mutations, the property.

A :class:`Target` turns bytes into a call of one parser of outside data. Its
structure-aware mutations (``ops``) change a valid file field by field: an op takes a
:class:`Chooser` (Hypothesis draws, or a seeded ``random.Random`` inside atheris'
custom mutator) and the current bytes, and returns new bytes. Both engines share
the ops, so atheris mutates structure too, besides its own byte-level mutations.

The property (:func:`check_one`): the parser returns a valid result (the target's
own assertions) or raises a :class:`~viewfinder.errors.ViewfinderError` subclass whose
message is one non-empty line. Anything else is a crash. Hangs (a time limit per
input) and memory (a budget) are enforced by the harness (``fuzz_harness.py``).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

Op = Callable[["Chooser", bytes], bytes]


class PropertyViolation(AssertionError):
    """A ViewfinderError whose message is not one non-empty line, or an invalid result."""


class Chooser:
    """Random choices for mutations: ``random.Random`` (atheris) or Hypothesis draws."""

    def __init__(self, rng: random.Random | None = None, draw: Any = None) -> None:
        self._rng, self._draw = rng, draw

    def int(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        if hi <= lo:
            return lo
        if self._draw is not None:
            from hypothesis import strategies as st

            return self._draw(st.integers(lo, hi))
        return self._rng.randint(lo, hi)  # type: ignore[union-attr]

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of a non-empty sequence."""
        return seq[self.int(0, len(seq) - 1)]

    def bytes(self, n: int) -> bytes:
        """``n`` arbitrary bytes."""
        if self._draw is not None:
            from hypothesis import strategies as st

            return self._draw(st.binary(min_size=n, max_size=n))
        return bytes(self._rng.getrandbits(8) for _ in range(n))  # type: ignore[union-attr]


@dataclass
class Target:
    """One parser of outside data under fuzzing.

    Attributes:
        name: Target name (``pytest -k`` and the harness's argument).
        seeds: ``seeds(shared or None) -> [bytes]``: valid inputs (from ``../shared``
            where it exists, plus small ones made here), in the target's encoding.
        run: ``run(data, workdir)``: call the parser; check the result when it returns.
        ops: Structure-aware mutations (``op(chooser, data) -> data``).
        modules: viewfinder modules atheris instruments for coverage.
        input_seconds: Time limit for one input (a longer one is a hang).
        isolate: Run each input in a forked child, for parsers that can crash the
            process natively (a known crash must not end the run); atheris sees no
            coverage from the child.
    """

    name: str
    seeds: Callable[[Path | None], list[bytes]]
    run: Callable[[bytes, Path], None]
    ops: list[Op] = field(default_factory=list)
    modules: tuple[str, ...] = ()
    input_seconds: float = 10.0
    isolate: bool = False


def check_one(target: Target, data: bytes, workdir: Path) -> str:
    """Run one input; return ``"ok"`` or the error class name. Other exceptions propagate."""
    from viewfinder.errors import ViewfinderError

    try:
        target.run(data, workdir)
    except ViewfinderError as exc:
        message = str(exc)
        if not message.strip() or "\n" in message or "\r" in message:
            raise PropertyViolation(f"{type(exc).__name__} message is not one line: "
                                    f"{message[:300]!r}") from exc
        return type(exc).__name__
    return "ok"


def mutate(ch: Chooser, data: bytes, ops: Sequence[Op], steps: int | None = None) -> bytes:
    """Apply 1..4 ops (structure-aware and generic) chosen by ``ch``."""
    count = ch.int(1, 4) if steps is None else steps
    for _ in range(count):
        op = ch.choice(ops)
        try:
            data = op(ch, data)
        except Exception:  # noqa: BLE001 - an op that does not apply leaves the bytes as they are
            continue
    return data


# --------------------------------------------------------------------------- fields
class Field(NamedTuple):
    """An integer field of a binary format: ``size`` bytes at ``offset``."""

    offset: int
    size: int
    order: str = "big"


def interesting(size: int, old: int) -> list[int]:
    """Values that break parsers: bounds, signs, off-by-one, doubled and halved."""
    top = (1 << (8 * size)) - 1
    half = top >> 1
    return [0, 1, 2, 3, 7, 8, 15, 16, 255 & top, top, top - 1, half, half + 1, old + 1,
            old - 1, old * 2, old // 2, 64 & top, 1000 & top, 32768 & top, 65535 & top,
            65536 & top]


def field_op(fields_of: Callable[[bytes], list[Field]]) -> Op:
    """An op setting one field (found by ``fields_of``) to an interesting value."""

    def op(ch: Chooser, data: bytes) -> bytes:
        fields = [f for f in fields_of(data) if f.offset + f.size <= len(data)]
        if not fields:
            return data
        f = ch.choice(fields)
        old = int.from_bytes(data[f.offset:f.offset + f.size], f.order)
        top = (1 << (8 * f.size)) - 1
        value = ch.choice(interesting(f.size, old)) if ch.int(0, 3) else ch.int(0, top)
        raw = (value & top).to_bytes(f.size, f.order)
        return data[:f.offset] + raw + data[f.offset + f.size:]

    return op


def span_op(spans_of: Callable[[bytes], list[tuple[int, int]]]) -> Op:
    """An op dropping, duplicating, swapping or cutting whole structural units."""

    def op(ch: Chooser, data: bytes) -> bytes:
        spans = [(a, b) for a, b in spans_of(data) if 0 <= a < b <= len(data)]
        if not spans:
            return data
        a, b = ch.choice(spans)
        how = ch.int(0, 3)
        if how == 0:
            return data[:a] + data[b:]
        if how == 1:
            return data[:b] + data[a:b] + data[b:]
        if how == 2:
            return data[:ch.int(a, b)]
        c, d = ch.choice(spans)
        if c < a:
            a, b, c, d = c, d, a, b
        if b > c:
            return data
        return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]

    return op


# --------------------------------------------------------------------------- generic ops
def flip_bytes(ch: Chooser, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(ch.int(1, 8)):
        i = ch.int(0, len(buf) - 1)
        buf[i] ^= 1 << ch.int(0, 7) if ch.int(0, 1) else ch.int(1, 255)
    return bytes(buf)


def truncate(ch: Chooser, data: bytes) -> bytes:
    return data[:ch.int(0, max(0, len(data) - 1))]


def insert_bytes(ch: Chooser, data: bytes) -> bytes:
    i = ch.int(0, len(data))
    return data[:i] + ch.bytes(ch.int(1, 16)) + data[i:]


def delete_range(ch: Chooser, data: bytes) -> bytes:
    if not data:
        return data
    i = ch.int(0, len(data) - 1)
    return data[:i] + data[i + ch.int(1, 64):]


def duplicate_range(ch: Chooser, data: bytes) -> bytes:
    if not data:
        return data
    i = ch.int(0, len(data) - 1)
    j = min(len(data), i + ch.int(1, 256))
    return data[:j] + data[i:j] + data[j:]


GENERIC: list[Op] = [flip_bytes, truncate, insert_bytes, delete_range, duplicate_range]


# --------------------------------------------------------------------------- helpers
def png_crc_fix(data: bytes) -> bytes:
    """Recompute every PNG chunk CRC, so mutations reach past the CRC check."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    buf, pos = bytearray(data), 8
    while pos + 12 <= len(buf):
        length = int.from_bytes(buf[pos:pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(buf):
            break
        buf[end:end + 4] = zlib.crc32(bytes(buf[pos + 4:end])).to_bytes(4, "big")
        pos = end + 4
    return bytes(buf)


def lines_op(values: Sequence[str]) -> Op:
    """Text: set the value of one ``key=value`` / ``key = value`` line to one of ``values``."""

    def op(ch: Chooser, data: bytes) -> bytes:
        lines = data.split(b"\n")
        idx = [i for i, ln in enumerate(lines) if b"=" in ln and not ln.lstrip().startswith(b"#")]
        if not idx:
            return data
        i = ch.choice(idx)
        key = lines[i].split(b"=", 1)[0]
        lines[i] = key + b"=" + ch.choice(values).encode()
        return b"\n".join(lines)

    return op


def line_shuffle_op(ch: Chooser, data: bytes) -> bytes:
    """Text: drop, duplicate or move one line."""
    lines = data.split(b"\n")
    if not lines:
        return data
    i = ch.int(0, len(lines) - 1)
    how = ch.int(0, 2)
    if how == 0:
        del lines[i]
    elif how == 1:
        lines.insert(ch.int(0, len(lines)), lines[i])
    else:
        line = lines.pop(i)
        lines.insert(ch.int(0, len(lines)), line)
    return b"\n".join(lines)


NUMBERS = ["0", "-1", "1", "2", "3", "-2147483649", "2147483648", "99999999999999999999",
           "1e999", "-1e999", "nan", "inf", "0.5", "-0.0", "", " ", "x", "1,2", ",", "1,,2",
           "1e308", "4294967296", "65536", "32", "7", "416", "0x10", "1_0", "１"]
