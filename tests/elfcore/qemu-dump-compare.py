#!/usr/bin/env python3
"""Checks our ELF core against one QEMU writes for the same memory.

qemu-dump-compare.py STREAMGEN STREAMRESTORE WORKDIR

A generated HVM stream (16 MiB, 2 vCPUs) is restored with --elf. QEMU (TCG,
stopped with -S, so no guest code runs) gets the restored memory.raw (a copy)
as its RAM through a memory-backend-file, and writes `dump-guest-memory`
over QMP. Then:
  - every PT_LOAD of QEMU's core that covers guest RAM (not the legacy VGA
    ROM window 0xc0000-0x100000, nor the BIOS ROM below 4 GiB) matches
    ours page for page: same guest-physical address, same bytes;
  - every page of ours lies in a QEMU PT_LOAD (the same memory is there);
  - both put p_vaddr == p_paddr for guest-physical dumps and the PT_NOTE
    first;
  - both hold one "CORE" NT_PRSTATUS note per vCPU followed by one "QEMU"
    note (type 0, 440-octet version-1 CPU state) per vCPU, in that order.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

PAGE = 4096
HOLE = (0xC0000, 0x100000)  # ROMs shadow RAM here (option ROM area and BIOS)


def elf(path):
    """(class, machine, phdrs [(type, offset, vaddr, paddr, filesz, memsz)], notes)."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:4] == b'\x7fELF', path
    cls = data[4]
    if cls == 2:
        (e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, _, e_shnum,
         _) = struct.unpack_from('<HHIQQQIHHHHHH', data, 16)
        fmt = '<IIQQQQQQ'
    else:
        (e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, _, e_shnum,
         _) = struct.unpack_from('<HHIIIIIHHHHHH', data, 16)
        fmt = '<IIIIIIII'
    assert e_type == 4, 'not ET_CORE'
    if e_phnum == 0xFFFF:
        sh_info_off = e_shoff + (44 if cls == 2 else 28)
        e_phnum = struct.unpack_from('<I', data, sh_info_off)[0]
    phdrs = []
    for i in range(e_phnum):
        v = struct.unpack_from(fmt, data, e_phoff + i * e_phentsize)
        if cls == 2:
            p_type, _, off, vaddr, paddr, filesz, memsz, _ = v
        else:
            p_type, off, vaddr, paddr, filesz, memsz, _, _ = v
        phdrs.append((p_type, off, vaddr, paddr, filesz, memsz))
    notes = []
    for p in phdrs:
        if p[0] != 4:
            continue
        pos, end = p[1], p[1] + p[4]
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from('<III', data, pos)
            name = data[pos + 12:pos + 12 + namesz].rstrip(b'\0').decode()
            desc_at = pos + 12 + (namesz + 3) // 4 * 4
            notes.append((name, ntype, descsz, data[desc_at:desc_at + descsz]))
            pos = desc_at + (descsz + 3) // 4 * 4
    return cls, e_machine, phdrs, notes, data


def qmp(sock_path, commands):
    deadline = time.time() + 30
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    f = s.makefile('rw')
    json.loads(f.readline())  # greeting
    replies = []
    for c in commands:
        f.write(json.dumps(c) + '\n')
        f.flush()
        while True:
            r = json.loads(f.readline())
            if 'event' in r:
                continue
            replies.append(r)
            break
    s.close()
    return replies


def main():
    gen, restore, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chdir(work)
    subprocess.run([gen, '--guest', 'hvm', '--pages', '4096', '--vcpus', '2', 's.xen'], check=True)
    subprocess.run([restore, '-q', 's.xen', '--out', 'd', '--elf', 'ours.core'], check=True)
    size = os.path.getsize('d/memory.raw')
    assert size == 16 << 20, size
    shutil.copyfile('d/memory.raw', 'ram.raw')
    qemu = subprocess.Popen([
        'qemu-system-x86_64', '-S', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-smp', '2',
        '-m', '16M', '-object', 'memory-backend-file,id=m,size=16M,mem-path=ram.raw,share=on',
        '-machine', 'pc,memory-backend=m', '-qmp', 'unix:qmp.sock,server=on,wait=off'
    ], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        replies = qmp('qmp.sock', [
            {'execute': 'qmp_capabilities'},
            {'execute': 'dump-guest-memory',
             'arguments': {'paging': False, 'protocol': 'file:' + os.path.abspath('qemu.core')}},
            {'execute': 'quit'},
        ])
        for r in replies:
            assert 'error' not in r, r
    finally:
        try:
            qemu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()

    _, _, qph, qnotes, qdata = elf('qemu.core')
    ocls, omachine, oph, onotes, odata = elf('ours.core')
    assert ocls == 2 and omachine == 62, (ocls, omachine)

    # PT_NOTE first, then the loads; p_vaddr == p_paddr on every load.
    for name, ph in (('qemu', qph), ('ours', oph)):
        assert ph[0][0] == 4, name + ': PT_NOTE is not the first program header'
        for p in ph[1:]:
            assert p[0] == 1, name + ': a non-PT_LOAD after the PT_NOTE'
            assert p[2] == p[3], name + ': p_vaddr != p_paddr: %r' % (p,)

    # Notes: CORE/NT_PRSTATUS per vCPU, then QEMU/0 per vCPU.
    def shape(notes):
        return [(n, t) for n, t, _, _ in notes]
    want = [('CORE', 1), ('CORE', 1), ('QEMU', 0), ('QEMU', 0)]
    assert shape(qnotes) == want, shape(qnotes)
    assert shape(onotes) == want, shape(onotes)
    assert [d for n, t, d, _ in qnotes if n == 'QEMU'] == [440, 440]
    assert [d for n, t, d, _ in onotes if n == 'QEMU'] == [440, 440]
    # pr_pid = vCPU index + 1 in both (QEMU's 32-bit prstatus has it at 24).
    qpid_at = 32 if qnotes[0][2] == 336 else 24
    assert [struct.unpack_from('<I', d, qpid_at)[0] for n, _, _, d in qnotes[:2]] == [1, 2]
    assert [struct.unpack_from('<I', d, 32)[0] for n, _, _, d in onotes[:2]] == [1, 2]
    # The QEMU CPU-state note starts with version 1 and its size.
    for notes in (qnotes, onotes):
        for n, t, _, d in notes[2:]:
            assert struct.unpack_from('<II', d, 0) == (1, 440)

    def pages(ph, data):
        out = {}
        for p in ph[1:]:
            _, off, _, paddr, filesz, _ = p
            for k in range(0, filesz, PAGE):
                out[paddr + k] = data[off + k:off + k + PAGE]
        return out

    qpages = pages(qph, qdata)
    opages = pages(oph, odata)
    compared = 0
    for addr, content in qpages.items():
        if HOLE[0] <= addr < HOLE[1] or addr >= size:
            continue
        assert addr in opages, 'QEMU has RAM page %#x that our core lacks' % addr
        assert opages[addr] == content, 'page %#x differs' % addr
        compared += 1
    for addr in opages:
        if HOLE[0] <= addr < HOLE[1]:
            continue
        assert addr in qpages, 'our page %#x is in no QEMU PT_LOAD' % addr
    expected = (size - (HOLE[1] - HOLE[0])) // PAGE
    assert compared == expected, (compared, expected)
    print('ok: %d pages equal; QEMU segments %s; ours %s' % (
        compared, [(hex(p[3]), hex(p[4])) for p in qph[1:]], [(hex(p[3]), hex(p[4])) for p in oph[1:]]))


if __name__ == '__main__':
    main()
