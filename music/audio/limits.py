"""What the in-process readers (``ogg.OggOpusReader``, ``webm.WebmOpusReader``) let any input cost.

The media the bot reads comes from anywhere on the internet, so the bound holds for every byte
string, not only for files a muxer wrote (issue 13; the figures are in docs/FAULTS.md):

* **Packets**: no Opus packet larger than Opus allows reaches the sender. RFC 6716 caps a frame
  at 1,275 bytes (section 3.4, R2) and a packet at 120 ms of audio (R5); a code 3 packet adds a
  TOC byte, a frame-count byte and at most two length bytes per frame but the last (VBR, section
  3.2.5). So a packet of M frames holds at most 1,277 x M bytes without padding: 1,277 for one
  20 ms frame, 10,216 for 20 ms as eight 2.5 ms frames (the most any 20 ms packet can need) and
  61,296 for 120 ms as 48 frames of 2.5 ms (the largest Opus packet of all). Padding could make
  one longer, but no encoder pads past that: a larger packet is refused, and a packet still
  growing past 61,296 bytes is refused before it is buffered further.
* **CPU**: every unit of work that yields no packet (an Ogg page or resync candidate, a CRC over
  1 KiB, an EBML element, an empty or skipped frame, a packet dropped before the start) is a
  *step*, about 1-3 us of Python. A reader may take ``STEP_FLOOR`` steps plus one per
  ``BYTES_PER_STEP`` bytes of input plus ``STEPS_PER_PACKET`` per packet it yields, and refuses
  the stream (``MediaLimitError``) past that. Packets yielded are paced by the prebuffer (50 a
  second, as they are played), so their own cost is per second of audio, not per byte.
* **Memory**: what a reader holds is bounded by its largest buffered element (Ogg: a page,
  65,307 bytes, and one packet in progress; WebM: an element of at most 1 MiB, or Cues of at
  most 4 MiB while a seek reads them), never by the input's length.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol

OPUS_MAX_FRAME_BYTES = 1275  # RFC 6716 section 3.4, R2
OPUS_MAX_BYTES_PER_FRAME = OPUS_MAX_FRAME_BYTES + 2  # with code 3's count and length bytes
OPUS_MAX_PACKET_MS = 120  # R5
OPUS_MIN_FRAME_MS = 2.5
OPUS_MAX_PACKET_BYTES = OPUS_MAX_BYTES_PER_FRAME * 48  # 61,296: 120 ms of 2.5 ms frames
OPUS_MAX_20MS_PACKET_BYTES = OPUS_MAX_BYTES_PER_FRAME * 8  # 10,216

# Frame duration in tenths of a ms for each TOC configuration (RFC 6716 section 3.1).
_FRAME_TENTHS = tuple(
    (100, 200, 400, 600)[c % 4] if c < 12 else (100, 200)[c % 2] if c < 16
    else (25, 50, 100, 200)[c % 4]
    for c in range(32)
)

STEP_FLOOR = 4096  # what any stream may take: the headers, a resync or two, a short file
BYTES_PER_STEP = 128
STEPS_PER_PACKET = 2


class MediaLimitError(ValueError):
    """The input asks more of a reader than any real file does (a packet larger than Opus
    allows, or more work than its size warrants): it is refused with this sentence, which
    names the cause and nothing of the source (no URL)."""


def opus_packet_limit(packet: bytes) -> int:
    """The most bytes a packet with this TOC (and frame count) can hold: 1,277 per frame, the
    frames limited to 120 ms. A packet too short to say how many frames counts as one frame."""
    toc = packet[0]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code != 3:
        frames = 2
    elif len(packet) > 1 and packet[1] & 0x3F:
        frames = min(packet[1] & 0x3F, OPUS_MAX_PACKET_MS * 10 // _FRAME_TENTHS[toc >> 3])
    else:
        frames = 1
    return OPUS_MAX_BYTES_PER_FRAME * frames


def check_opus_packet(packet: bytes) -> None:
    """Refuse a packet larger than its TOC allows (see the module docstring). Any packet of at
    most 1,277 bytes is within every limit: callers test that first, without a call."""
    if len(packet) > OPUS_MAX_BYTES_PER_FRAME and len(packet) > opus_packet_limit(packet):
        raise MediaLimitError(
            f"the audio is damaged or hostile: a packet of {len(packet):,} bytes, more than "
            f"Opus allows for its frames ({opus_packet_limit(packet):,} bytes at most)")


def packet_too_long(size: int) -> MediaLimitError:
    return MediaLimitError(
        f"the audio is damaged or hostile: a packet that goes on past {size:,} bytes, more "
        f"than any Opus packet holds ({OPUS_MAX_PACKET_BYTES:,} bytes at most)")


class WorkMeter:
    """Counts a reader's steps (see the module docstring) against its allowance.

    ``progress`` returns (bytes read, packets yielded) so far. The hot loops add to ``steps``
    and compare with ``limit`` themselves (two attribute operations); only past ``limit`` is
    the allowance computed again (``recheck``), and the stream refused if it is still over."""

    __slots__ = ("steps", "limit", "what", "_progress")

    def __init__(self, what: str, progress: Callable[[], tuple[int, int]]) -> None:
        self.steps = 0
        self.limit = STEP_FLOOR
        self.what = what  # what a step is, for the sentence: "Ogg pages, resync attempts..."
        self._progress = progress

    def charge(self, steps: int) -> None:
        self.steps += steps
        if self.steps > self.limit:
            self.recheck()

    def recheck(self) -> None:
        bytes_read, packets = self._progress()
        self.limit = STEP_FLOOR + bytes_read // BYTES_PER_STEP + packets * STEPS_PER_PACKET
        if self.steps > self.limit:
            raise MediaLimitError(
                f"the audio is damaged or hostile: {self.steps:,} {self.what} that hold no "
                f"audio in its first {_size(bytes_read)}, more work than any real file needs")


class Progressing(Protocol):
    bytes_read: int
    packets_out: int


def progress_of(reader: Progressing) -> Callable[[], tuple[int, int]]:
    """A WorkMeter's ``progress`` for ``reader`` (its bytes read, packets yielded), holding the
    reader weakly: the meter lives on the reader, and a closure over the reader itself would
    make every reader a reference cycle (with its input's buffers, locks and connection), freed
    only by a full garbage collection: about 20 objects per track that piled up in the soak
    (benchmarks/soak.py) and make the rare full collection longer, a pause of the audio."""
    ref = weakref.ref(reader)

    def progress() -> tuple[int, int]:
        alive = ref()
        return (alive.bytes_read, alive.packets_out) if alive is not None else (0, 0)

    return progress


def _size(count: int) -> str:
    if count >= 2**20:
        return f"{count / 2**20:.1f} MiB"
    return f"{max(1, round(count / 1024)):,} KiB"
