#!/usr/bin/env python3
"""A chatty program for the log-capture benchmarks (W4).

    writer.py BYTES BLOCK STAMP [GO]

Writes BYTES bytes of 100-byte lines ("x" * 99 + newline) to standard output, BLOCK bytes
(a whole number of lines) per write(2), the last write cut so that exactly BYTES go out.
With GO, it first waits (polling every millisecond, for at most a minute) until the file GO
exists, so that a benchmark can let a supervisor's client command finish before the output
starts. Then, before the first write, it records its start time (time.time(), CLOCK_REALTIME)
in the file STAMP, so the output alone is timed: from that stamp to the moment the last byte
lands in the log file (its mtime), whoever started the writer and however long that took.
Once all is written it records the time in STAMP.done.

One process, so the writer leaves a core to whoever captures its output; BLOCK = 65,500 is
one default pipe's worth, BLOCK = 4,000 is about what C stdio writes to a pipe.
"""

import os
import sys
import time


def main():
    total, block, stamp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if len(sys.argv) > 4:
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[4]):
            if time.monotonic() > deadline:
                sys.exit(f"writer.py: {sys.argv[4]} never appeared")
            time.sleep(0.001)
    line = b"x" * 99 + b"\n"
    buf = line * max(1, block // len(line))
    with open(stamp, "w") as f:
        f.write(repr(time.time()))
    left = total
    write = os.write
    while left > 0:
        chunk = buf if left >= len(buf) else buf[:left]
        left -= len(chunk)
        while chunk:
            chunk = chunk[write(1, chunk):]
    with open(stamp + ".done", "w") as f:
        f.write(repr(time.time()))


if __name__ == "__main__":
    main()
