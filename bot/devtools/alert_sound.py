"""The back-office alarm (``bot/admin/static/alert.wav``), generated here rather than downloaded: three
short two-tone beeps (880 Hz then 660 Hz), 8 kHz mono 8-bit PCM, about 10 KB.

Regenerate with ``python -m bot.devtools.alert_sound`` (tests check the shipped file is exactly this).
"""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

RATE = 8000
TARGET = Path(__file__).resolve().parent.parent / "admin" / "static" / "alert.wav"
#: (frequency Hz or 0 for silence, seconds)
PATTERN: tuple[tuple[float, float], ...] = ((880, 0.16), (660, 0.16), (0, 0.12)) * 3


def samples() -> bytes:
    out = bytearray()
    for freq, seconds in PATTERN:
        count = int(RATE * seconds)
        for i in range(count):
            if freq == 0:
                out.append(128)
                continue
            # a short fade in and out keeps the beep from clicking
            envelope = min(1.0, i / 80, (count - i) / 80)
            value = 0.6 * envelope * math.sin(2 * math.pi * freq * i / RATE)
            out.append(max(0, min(255, round(128 + 127 * value))))
    return bytes(out)


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(RATE)
        w.writeframes(samples())
    return buffer.getvalue()


def main() -> None:
    TARGET.write_bytes(wav_bytes())
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
