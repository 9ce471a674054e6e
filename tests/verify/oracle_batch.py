#!/usr/bin/env python3
"""Run Xen's verify-stream-v2 on many streams in one interpreter.

Used by oracle_test.cpp as the interpreter of the wrapper that
tests/oracle/fetch-xen-tools.sh writes (through its XEN_ORACLE_PYTHON
hook), so the fetched script and library are the ones that run:

    XEN_ORACLE_PYTHON=oracle_batch.py verify-stream-v2 < LIST > STATUSES

argv[1] is the reference script (the wrapper passes it); further arguments
are ignored. Each stdin line is "FORMAT PATH"; for each, the script runs as
`verify-stream-v2 -q -f FORMAT -i PATH` would, and one line with its exit
status goes to stdout (an uncaught exception counts as 1, as it does for
the python3 process).
"""

import io
import os
import runpy
import sys


class Discard(io.TextIOBase):
    """A text sink whose fileno() hands out a fresh duplicate of /dev/null
    each time, so that a script which wraps sys.stdout's fd in a file of its
    own (verify-stream-v2 does) owns and closes only that duplicate."""

    def __init__(self, devnull):
        super().__init__()
        self._devnull = devnull

    def fileno(self):
        return os.dup(self._devnull)

    def writable(self):
        return True

    def write(self, s):
        return len(s)


def main():
    script = sys.argv[1]
    out = os.fdopen(os.dup(1), "w", 1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        fmt, path = line.split(" ", 1)
        sys.argv = [script, "-q", "-f", fmt, "-i", path]
        sys.stdout = Discard(devnull)
        sys.stderr = Discard(devnull)
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                code = 1
        except Exception:  # uncaught: python3 would print a traceback and exit 1
            code = 1
        out.write("%d\n" % code)


if __name__ == "__main__":
    main()
