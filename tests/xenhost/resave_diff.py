#!/usr/bin/env python3
"""Compare xl's save image with xenstream's re-save of it, record by record.

Usage: resave_diff.py XL_IMAGE OUR_IMAGE

Walks both files with a walker of its own (xl header, libxl v2 records, the
libxc v3 stream inside LIBXC_CONTEXT; written from the layouts in spec/, not
from xenstream's code) and prints one line per record whose bytes differ:
layer, index, type, offset, and for HVM_PARAMS whether the (index, value)
pairs are the same set in another order. Exit 0 when the files are identical
or every difference is an HVM_PARAMS record holding the same pairs in a
different order; exit 1 otherwise.
"""
import struct
import sys

XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"
LIBXL_TYPES = {0: "END", 1: "LIBXC_CONTEXT", 2: "EMULATOR_XENSTORE_DATA", 3: "EMULATOR_CONTEXT",
               4: "CHECKPOINT_END", 5: "CHECKPOINT_STATE"}
LIBXC_TYPES = {0: "END", 1: "PAGE_DATA", 2: "X86_PV_INFO", 3: "X86_PV_P2M_FRAMES",
               4: "X86_PV_VCPU_BASIC", 5: "X86_PV_VCPU_EXTENDED", 6: "X86_PV_VCPU_XSAVE",
               7: "SHARED_INFO", 8: "X86_TSC_INFO", 9: "HVM_CONTEXT", 10: "HVM_PARAMS",
               11: "TOOLSTACK", 12: "X86_PV_VCPU_MSRS", 13: "VERIFY", 14: "CHECKPOINT",
               15: "CHECKPOINT_DIRTY_PFN_LIST", 16: "STATIC_DATA_END", 17: "X86_CPUID_POLICY",
               18: "X86_MSR_POLICY"}


def walk(data):
    """Return [(layer, index, type_name, start, end)] covering every record."""
    recs = []
    if not data.startswith(XL_MAGIC):
        raise ValueError("no xl header")
    _order, _mand, _opt, optlen = struct.unpack_from("<IIII", data, 32)
    off = 48 + optlen
    recs.append(("xl", 0, "xl header", 0, off))
    recs.append(("libxl", 0, "libxl header", off, off + 16))
    off += 16
    index = 0
    while True:
        rtype, length = struct.unpack_from("<II", data, off)
        end = off + 8 + ((length + 7) & ~7)
        name = LIBXL_TYPES.get(rtype, f"0x{rtype:x}")
        recs.append(("libxl", index, name, off, end))
        index += 1
        off = end
        if rtype == 0:
            break
        if rtype == 1:  # LIBXC_CONTEXT: the libxc stream follows
            recs.append(("libxc", 0, "image+domain header", off, off + 40))
            off += 40
            xi = 0
            while True:
                xtype, xlen = struct.unpack_from("<II", data, off)
                xend = off + 8 + ((xlen + 7) & ~7)
                recs.append(("libxc", xi, LIBXC_TYPES.get(xtype, f"0x{xtype:x}"), off, xend))
                xi += 1
                off = xend
                if xtype == 0:
                    break
    if off != len(data):
        raise ValueError(f"walk ended at {off:#x}, file is {len(data):#x}")
    return recs


def hvm_params(data, start, end):
    count, = struct.unpack_from("<I", data, start + 8)
    return [struct.unpack_from("<QQ", data, start + 16 + 16 * i) for i in range(count)]


def main():
    a = open(sys.argv[1], "rb").read()
    b = open(sys.argv[2], "rb").read()
    if a == b:
        print("identical")
        return 0
    ra, rb = walk(a), walk(b)
    if [(r[0], r[2]) for r in ra] != [(r[0], r[2]) for r in rb]:
        print("the record sequences differ")
        return 1
    bad = 0
    for x, y in zip(ra, rb):
        if a[x[3]:x[4]] == b[y[3]:y[4]]:
            continue
        where = f"{x[0]} record #{x[1]} {x[2]} at [{x[3]:#x}, {x[4]:#x})"
        if x[2] == "HVM_PARAMS":
            pa, pb = hvm_params(a, x[3], x[4]), hvm_params(b, y[3], y[4])
            if sorted(pa) == sorted(pb):
                print(f"{where}: the same {len(pa)} (index, value) pairs, in another order: "
                      f"xl {[hex(i) for i, _ in pa]}, ours {[hex(i) for i, _ in pb]}")
                continue
            print(f"{where}: different pairs: xl {pa}, ours {pb}")
        else:
            print(f"{where}: differs")
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
