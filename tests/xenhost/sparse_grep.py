#!/usr/bin/env python3
"""Search the data of a sparse file, skipping its holes (SEEK_DATA/SEEK_HOLE):
memory.raw of a PVH or HVM guest spans 4 GiB but holds 64-128 MiB.

Usage: sparse_grep.py FILE STRING   exit 0 when STRING occurs in FILE
       sparse_grep.py FILE --max-tick  print the largest XSTICK-<n> counter (0 if none)
"""
import os
import re
import sys

CHUNK = 8 << 20


def chunks(path):
    """Yield the file's data in pieces that overlap by 256 octets."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # no data after off
                return
            end = os.lseek(fd, off, os.SEEK_HOLE)
            while off < end:
                n = min(CHUNK, end - off)
                yield os.pread(fd, n + 256, off)
                off += n
    finally:
        os.close(fd)


def main():
    path, what = sys.argv[1], sys.argv[2]
    if what == "--max-tick":
        best = 0
        for data in chunks(path):
            for m in re.finditer(rb"XSTICK-([0-9]{1,9})", data):
                best = max(best, int(m.group(1)))
        print(best)
        return 0
    needle = what.encode()
    return 0 if any(needle in data for data in chunks(path)) else 1


if __name__ == "__main__":
    sys.exit(main())
