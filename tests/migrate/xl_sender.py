#!/usr/bin/env python3
"""Plays the sending side of `xl migrate` and `xl remus` against
`streamrestore --xl-migrate-receive`, written from Xen's xl (tools/xl/xl.h,
xl_migrate.c migrate_domain and migrate_do_preamble, xl_saverestore.c
save_domain_core_writeconfig), not from this project's tools/migrate/.

Every case records the conversation in both directions and compares it with
the transcript xl's sender would see, checks that the receiver then closes its
side, its exit status and what DIR holds.

xl remus --colo is played with its primary side of the back channel
(libxl_colo_save.c, xg_sr_save.c).

Legacy images (an xl header without STREAMv2, as an xl of Xen 4.5 sent) come
from LEGACY_IMAGE (tests/migrate/legacy_image.cpp, the tests' legacy writer).

Usage: xl_sender.py STREAMRESTORE STREAMGEN WORKDIR LEGACY_IMAGE
"""
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time

# tools/xl/xl.h: the messages, sent with or without their NUL as xl does.
BANNER = b"xl migration receiver ready, send binary domain data.\n"  # sizeof - 1
READY = b"domain received, ready to unpause\0"                      # sizeof
GO = b"domain is yours, you are cleared to unpause\0"               # sizeof
REPORT = b"my copy unpause results are as follows\0"                # sizeof
MAGIC = b"Xen saved domain, xl format\n \0 \r"                      # 32 octets
FLAG_JSON, FLAG_STREAMV2 = 1, 2

RESTORE, GEN, WORK, LEGACY = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
TIMEOUT = 60
failures = []


def xl_header(config, order="<", byteorder=0x01020304, mandatory=FLAG_STREAMV2 | FLAG_JSON,
              optional_data=None):
    """save_domain_core_writeconfig: header, then u32 config_len + config."""
    if optional_data is None:
        optional_data = struct.pack(order + "I", len(config)) + config
    return MAGIC + struct.pack(order + "IIII", byteorder, mandatory, 0, len(optional_data)) + optional_data


CONFIG = b'{"c_info": {"name": "sender-guest"}}\0'


class Receiver:
    def __init__(self, args, out):
        self.out = out
        self.p = subprocess.Popen([RESTORE, "--xl-migrate-receive", *args, "--out", out],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.transcript = []  # ("recv" | "send", bytes)

    def read_exact(self, n, timeout=TIMEOUT):
        """n octets from the receiver, fewer at EOF (as libxl_read_exactly fails)."""
        fd = self.p.stdout.fileno()
        got = b""
        deadline = time.monotonic() + timeout
        while len(got) < n:
            r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            if not r:
                raise RuntimeError("the receiver said nothing for %d s" % timeout)
            chunk = os.read(fd, n - len(got))
            if not chunk:
                break
            got += chunk
        self.transcript.append(("recv", got))
        return got

    def send(self, data):
        """Writes as libxl_write_exactly; False when the receiver hung up."""
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
        except BrokenPipeError:
            self.transcript.append(("send-epipe", b""))
            return False
        self.transcript.append(("send", data))
        return True

    def crash(self):
        """The sender dies: both of its ends of the connection close. The end
        it reads from closes first, so that whatever the receiver writes
        after it sees EOF fails (EPIPE) every time, not only when it loses
        the race against the second close."""
        self.p.stdout.close()
        self.hang_up()
        try:
            self.p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise
        self.stderr = self.p.stderr.read().decode(errors="replace")
        return self.p.returncode

    def hang_up(self):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass

    def finish(self):
        """The receiver's side must end (EOF) with nothing more; its exit status."""
        self.hang_up()
        rest = self.p.stdout.read()
        if rest:
            self.transcript.append(("recv-extra", rest))
        try:
            self.p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise
        self.stderr = self.p.stderr.read().decode(errors="replace")
        return self.p.returncode


def check(name, cond, detail=""):
    if cond:
        print("ok: " + name)
    else:
        print("FAIL: " + name + (": " + detail if detail else ""))
        failures.append(name)


def manifest(d):
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gen(name, *args):
    path = os.path.join(WORK, name)
    subprocess.run([GEN, "--container", "none", "--pages", "256", *args, path], check=True)
    with open(path, "rb") as f:
        return f.read()


def reference(name, stream, *args):
    """DIR as streamrestore restores the same image from a file."""
    img = os.path.join(WORK, name + ".xen")
    with open(img, "wb") as f:
        f.write(xl_header(CONFIG) + stream)
    d = os.path.join(WORK, name + ".ref")
    subprocess.run([RESTORE, "-q", *args, img, "--out", d], stderr=subprocess.DEVNULL)
    with open(os.path.join(d, "memory.raw"), "rb") as f:
        return f.read()


def memory(d):
    try:
        with open(os.path.join(d, "memory.raw"), "rb") as f:
            return f.read()
    except OSError:
        return None


def migrate(name, image, args=(), go=GO, send_go=True):
    """migrate_domain's side of a plain migration; returns (receiver, rc)."""
    out = os.path.join(WORK, name)
    r = Receiver(list(args), out)
    banner = r.read_exact(len(BANNER))
    if banner == BANNER and r.send(image):
        if r.read_exact(len(READY)) == READY:
            if send_go:
                r.send(go)
            else:
                r.hang_up()
            if r.read_exact(len(REPORT)) == REPORT:
                status = r.read_exact(1)
                if status and status != b"\0":
                    r.read_exact(len(GO))  # the permission to resume
    return r, r.finish()


def expect_transcript(name, r, want):
    got = [(k, v) for k, v in r.transcript]
    check(name + ": transcript", got == want,
          "got %r want %r; stderr: %s" % ([(k, v[:60]) for k, v in got], [(k, v[:60]) for k, v in want],
                                          r.stderr[-600:]))


plain = gen("plain.libxl", "--emulator-context", "--xenstore-data")
image = xl_header(CONFIG) + plain
ref = reference("plain", plain)

# 1. The default is a capture: status 3, then the permission to resume, so
#    xl resumes the source domain (migrate_domain: rc_buf != 0).
r, rc = migrate("capture", image)
expect_transcript("capture", r, [("recv", BANNER), ("send", image), ("recv", READY), ("send", GO),
                                 ("recv", REPORT), ("recv", b"\x03"), ("recv", GO)])
m = manifest(r.out)
check("capture: exit 0, DIR restored", rc == 0 and memory(r.out) == ref, "rc %d %s" % (rc, r.stderr[-400:]))
check("capture: manifest says captured and what the sender was told",
      m is not None and m["status"] == "complete" and m["migration"]["outcome"] == "captured"
      and m["migration"]["status_sent"] == 3 and m["migration"]["take_over"] is False
      and m["migration"]["permission_to_resume_sent"] is True and "resumes" in m["migration"]["told_sender"], str(m))

# 2. --take-over: status 0 and nothing after it (xl destroys its domain).
r, rc = migrate("takeover", image, ["--take-over"])
expect_transcript("take-over", r, [("recv", BANNER), ("send", image), ("recv", READY), ("send", GO),
                                   ("recv", REPORT), ("recv", b"\x00")])
m = manifest(r.out)
check("take-over: exit 0, manifest taken-over",
      rc == 0 and memory(r.out) == ref and m["migration"]["outcome"] == "taken-over"
      and m["migration"]["status_sent"] == 0 and m["migration"]["take_over"] is True, "rc %d %s" % (rc, m))

# 3. A wrong GO: as migrate_receive, the report with 0xFF, then GO back.
bad_go = b"domain is mine, you are cleared to unpause\0"[:len(GO)].ljust(len(GO), b"!")
r, rc = migrate("badgo", image, go=bad_go)
expect_transcript("wrong GO", r, [("recv", BANNER), ("send", image), ("recv", READY), ("send", bad_go),
                                  ("recv", REPORT), ("recv", b"\xff"), ("recv", GO)])
m = manifest(r.out)
check("wrong GO: exit 1, manifest not complete",
      rc == 1 and m is not None and m["status"] == "migration-refused" and m["migration"]["outcome"] == "go-refused"
      and m["migration"]["status_sent"] == 255, "rc %d %s" % (rc, m))
check("wrong GO: no 0x0x in messages", "0x0x" not in r.stderr, r.stderr)

# 4. No GO at all: the sender hangs up after "domain received".
r, rc = migrate("nogo", image, send_go=False)
expect_transcript("missing GO", r, [("recv", BANNER), ("send", image), ("recv", READY),
                                    ("recv", REPORT), ("recv", b"\xff"), ("recv", GO)])
m = manifest(r.out)
check("missing GO: exit 1, manifest not complete",
      rc == 1 and m is not None and m["status"] == "migration-refused", "rc %d %s" % (rc, m))


def refused_header(name, data, what):
    """create_domain refuses the header: nothing after the banner, no DIR."""
    out = os.path.join(WORK, name)
    r = Receiver([], out)
    r.read_exact(len(BANNER))
    r.send(data)
    rc = r.finish()
    expect_transcript(name, r, [("recv", BANNER), ("send", data)] if r.transcript[1][0] == "send"
                      else [("recv", BANNER), ("send-epipe", b"")])
    check(name + ": exit 1, no DIR", rc == 1 and not os.path.exists(out), "rc %d %s" % (rc, r.stderr[-300:]))
    check(name + ": says " + what, what in r.stderr, r.stderr[-300:])
    check(name + ": no 0x0x", "0x0x" not in r.stderr, r.stderr)


refused_header("short header", xl_header(CONFIG)[:40], "xl save header")
refused_header("config overrun", xl_header(CONFIG, optional_data=struct.pack("<I", 4096) + CONFIG) + plain,
               "overruns the optional data")
refused_header("optional data too short", xl_header(CONFIG, optional_data=b"\1\0") + plain, "shorter than")
refused_header("big-endian header", xl_header(CONFIG, order=">") + plain, "byte-order")
refused_header("unknown mandatory flag", xl_header(CONFIG, mandatory=FLAG_STREAMV2 | FLAG_JSON | 4) + plain,
               "unknown bits 0x4")
refused_header("no config", xl_header(b"", optional_data=b"") + plain, "no domain config")
refused_header("garbage after the banner", bytes(range(256)) * 4, "magic")
refused_header("STREAMv2 flag over a non-libxl payload", xl_header(CONFIG) + b"\0" * 4096, "STREAMv2")

# 4b. The sender crashes (both ends close) after the stream: the manifest says
#     how it ended and never "complete" (migrate_receive exits when it cannot
#     write "domain received"; a missing GO is answered with 0xFF, which here
#     cannot be written either).
out = os.path.join(WORK, "crash-before-ready")
r = Receiver([], out)
r.read_exact(len(BANNER))
r.send(image)
rc = r.crash()
m = manifest(out)
check("sender crashes before \"domain received\": exit 2, manifest migration-incomplete, sender told nothing",
      rc == 2 and m is not None and m["status"] == "migration-incomplete"
      and m["migration"]["outcome"] == "sender-lost" and m["migration"]["told_sender"].startswith("nothing")
      and "status_sent" not in m["migration"] and memory(out) == ref, "rc %d %s %s" % (rc, m, r.stderr[-300:]))

out = os.path.join(WORK, "crash-waiting-for-go")
r = Receiver([], out)
r.read_exact(len(BANNER))
r.send(image)
ready = r.read_exact(len(READY))
rc = r.crash()
m = manifest(out)
check("sender crashes while the receiver waits for GO: exit 1, migration-refused, nothing sent after READY",
      ready == READY and rc == 1 and m is not None and m["status"] == "migration-refused"
      and m["migration"]["outcome"] == "go-refused" and "status_sent" not in m["migration"]
      and m["migration"]["told_sender"].startswith("nothing") and "reply_error" in m["migration"],
      "rc %d %s %s" % (rc, m, r.stderr[-300:]))

# The receiver itself dies while it waits for GO: DIR must not look finished.
out = os.path.join(WORK, "killed-waiting-for-go")
r = Receiver([], out)
r.read_exact(len(BANNER))
r.send(image)
ready = r.read_exact(len(READY))
m = manifest(out)
r.p.kill()
r.p.wait()
check("receiver killed while it waits for GO: manifest migration-pending, not complete",
      ready == READY and m is not None and m["status"] == "migration-pending"
      and m["migration"]["outcome"] == "pending" and memory(out) == ref, str(m))
r.hang_up()

# 4c. Legacy payloads (no STREAMv2 flag), converted on the fly as libxl does.


def legacy(name, *args):
    path = os.path.join(WORK, name + ".legacy")
    subprocess.run([LEGACY, path, *args], check=True)
    with open(path, "rb") as f:
        return f.read()


for name, args in (("legacy-hvm", ()), ("legacy-pv", ("--pv",)),
                   ("legacy-no-last-checkpoint", ("--no-last-checkpoint",))):
    data = legacy(name, *args)
    check(name + ": the xl header has no STREAMv2 flag",
          data.startswith(MAGIC) and struct.unpack_from("<I", data, 36)[0] & FLAG_STREAMV2 == 0)
    out = os.path.join(WORK, name)
    r = Receiver([], out)
    r.read_exact(len(BANNER))
    r.send(data)
    # Without LAST_CHECKPOINT nothing says the image is over: the receiver
    # must not wait for more (xl's sender waits for "domain received").
    got = r.read_exact(len(READY), timeout=20) if name.endswith("checkpoint") else r.read_exact(len(READY))
    if got == READY:
        r.send(GO)
        r.read_exact(len(REPORT))
        r.read_exact(1)
        r.read_exact(len(GO))
    rc = r.finish()
    expect_transcript(name, r, [("recv", BANNER), ("send", data), ("recv", READY), ("send", GO),
                                ("recv", REPORT), ("recv", b"\x03"), ("recv", GO)])
    m = manifest(out)
    check(name + ": exit 0, captured, converted_from_legacy in domain and migration",
          rc == 0 and m is not None and m["status"] == "complete" and m["domain"]["converted_from_legacy"] is True
          and m["domain"]["xen_major"] == 0 and m["migration"]["converted_from_legacy"] is True
          and m["migration"]["outcome"] == "captured" and m["migration"].get("legacy_checkpoints") == 1
          and m["migration"].get("legacy_last_checkpoint") is not name.endswith("checkpoint"),
          "rc %d %s %s" % (rc, m, r.stderr[-300:]))

# A legacy Remus primary (3 checkpoints, no LAST_CHECKPOINT) against a plain
# receiver: as Xen's converter, the first checkpoint is the image; what
# follows is read as the GO message: wrong, so 0xFF and permission to resume.
remus3 = legacy("legacy-remus3", "--checkpoints", "3", "--no-last-checkpoint")
out = os.path.join(WORK, "legacy-remus-plain")
r = Receiver([], out)
r.read_exact(len(BANNER))
r.send(remus3)
got = r.read_exact(len(READY), timeout=20)
if got == READY:
    r.read_exact(len(REPORT))
    r.read_exact(1)
    r.read_exact(len(GO))
rc = r.finish()
expect_transcript("legacy Remus stream, plain receiver", r,
                  [("recv", BANNER), ("send", remus3), ("recv", READY), ("recv", REPORT), ("recv", b"\xff"),
                   ("recv", GO)])
m = manifest(out)
check("legacy Remus stream, plain receiver: exit 1, first checkpoint kept, migration-refused",
      rc == 1 and m is not None and m["status"] == "migration-refused"
      and m["migration"].get("legacy_checkpoints") == 1 and m["domain"]["converted_from_legacy"] is True,
      "rc %d %s %s" % (rc, m, r.stderr[-300:]))

# The same primary against -r: checkpoints as they come; it hangs up (EOF)
# without LAST_CHECKPOINT: failover at the last complete checkpoint.
for name, data, want_ckpts in (("legacy-remus-r", remus3, 3), ("legacy-remus-r-cut", remus3[:-100], 2)):
    out = os.path.join(WORK, name)
    r = Receiver(["-r"], out)
    r.read_exact(len(BANNER))
    r.send(data)
    rc = r.finish()
    expect_transcript(name, r, [("recv", BANNER), ("send", data)])
    m = manifest(out)
    check(name + ": exit 3, manifest failover at legacy checkpoint %d" % want_ckpts,
          rc == 3 and m is not None and m["status"] == "failover" and m["migration"]["outcome"] == "failover"
          and m["checkpoints"]["committed"] == want_ckpts and m["migration"].get("legacy_checkpoints") == want_ckpts and m["migration"].get("legacy_last_checkpoint") is False
          and m["domain"]["converted_from_legacy"] is True and "failover" in r.stderr,
          "rc %d %s %s" % (rc, m, r.stderr[-300:]))

# -r and a legacy image with LAST_CHECKPOINT: a complete stream (exit 0).
data = legacy("legacy-hvm")
out = os.path.join(WORK, "legacy-last-r")
r = Receiver(["-r"], out)
r.read_exact(len(BANNER))
r.send(data)
rc = r.finish()
m = manifest(out)
check("legacy image with LAST_CHECKPOINT, -r: exit 0, complete",
      rc == 0 and m is not None and m["status"] == "complete" and m["migration"]["outcome"] == "complete",
      "rc %d %s %s" % (rc, m, r.stderr[-300:]))

# --colo and a legacy stream: refused before anything is restored.
out = os.path.join(WORK, "legacy-colo")
r = Receiver(["--colo"], out)
r.read_exact(len(BANNER))
r.send(remus3)
rc = r.finish()
check("legacy stream, --colo: exit 1, no DIR, says legacy",
      rc == 1 and not os.path.exists(out) and "legacy" in r.stderr and r.transcript[-1][0] != "recv-extra",
      "rc %d %s" % (rc, r.stderr[-300:]))

# 5. A sender that hangs up at each step before "domain received" (the last
#    cut is 4 octets into the record before the libxl END).
for cut in (0, 20, 48 + 4 + len(CONFIG) // 2, len(image) // 2, len(image) - 12):
    out = os.path.join(WORK, "hangup-%d" % cut)
    r = Receiver([], out)
    r.read_exact(len(BANNER))
    if cut:
        r.send(image[:cut])
    rc = r.finish()
    check("sender hangs up after %d octets: exit 1, no DIR, nothing said" % cut,
          rc == 1 and not os.path.exists(out) and r.transcript[-1][0] != "recv-extra",
          "rc %d %s %s" % (rc, r.transcript[-1][0], r.stderr[-300:]))

# 5b. A hang-up right before the libxl END: libxl's reader takes the end of
#     input at a record boundary for END (libxl_stream_read.c; xl restore
#     of such an image succeeds in tests/xenhost), so xl has received the
#     domain and says so; then GO is missing, as in 4.
r = Receiver([], os.path.join(WORK, "hangup-before-end"))
if r.read_exact(len(BANNER)) == BANNER and r.send(image[:-8]):
    r.hang_up()
    if r.read_exact(len(READY)) == READY and r.read_exact(len(REPORT)) == REPORT:
        if r.read_exact(1) == b"\xff":
            r.read_exact(len(GO))
rc = r.finish()
expect_transcript("hang-up before the libxl END", r, [("recv", BANNER), ("send", image[:-8]), ("recv", READY),
                                                      ("recv", REPORT), ("recv", b"\xff"), ("recv", GO)])
m = manifest(r.out)
check("hang-up before the libxl END: domain received, then no GO: exit 1, manifest not complete",
      rc == 1 and m is not None and m["status"] == "migration-refused", "rc %d %s" % (rc, m))

# 6. Options that make no sense here are refused (exit 2), before the banner.
for args in (["--format", "xl"], ["-r", "--take-over"], ["some-file"]):
    p = subprocess.run([RESTORE, "--xl-migrate-receive", *args, "--out", os.path.join(WORK, "usage")],
                       stdin=subprocess.DEVNULL, capture_output=True)
    check("refused: %s: exit 2, nothing on stdout" % " ".join(args), p.returncode == 2 and p.stdout == b"",
          "rc %d" % p.returncode)

# 7. Modes from the flags. Plain mode and a checkpointed stream: xl's
#    receiver dies at the first CHECKPOINT.
ckpt4 = gen("remus4.libxl", "--checkpoints", "4", "--dirty-pages", "20")
ckpt2 = gen("remus2.libxl", "--checkpoints", "2", "--dirty-pages", "20")
assert ckpt4.startswith(ckpt2)
r, rc = migrate("plain-checkpointed", xl_header(CONFIG) + ckpt4)
expect_transcript("plain mode, checkpointed stream", r,
                  [("recv", BANNER), ("send", xl_header(CONFIG) + ckpt4), ("recv", b"")])
check("plain mode, checkpointed stream: exit 1, no DIR",
      rc == 1 and not os.path.exists(r.out) and "CHECKPOINT" in r.stderr, "rc %d %s" % (rc, r.stderr[-300:]))


def remus(name, data, args=("-r",), hang_up=True):
    """xl remus: preamble, then the checkpoints; the primary dies (hangs up)."""
    out = os.path.join(WORK, name)
    r = Receiver(list(args), out)
    r.read_exact(len(BANNER))
    r.send(data)
    rc = r.finish()
    return r, rc


ref2 = reference("remus2", ckpt2, "-r")
r, rc = remus("remus-cut", xl_header(CONFIG) + ckpt4[:len(ckpt2) + 4096 * 5])
m = manifest(r.out)
expect_transcript("remus primary dies in checkpoint 3", r,
                  [("recv", BANNER), ("send", xl_header(CONFIG) + ckpt4[:len(ckpt2) + 4096 * 5])])
check("remus primary dies in checkpoint 3: exit 3, DIR at checkpoint 2",
      rc == 3 and m is not None and m["status"] == "failover" and m["checkpoints"]["committed"] == 2
      and memory(r.out) == ref2 and m["migration"]["mode"] == "remus" and m["migration"]["outcome"] == "failover",
      "rc %d %s %s" % (rc, m, r.stderr[-300:]))

# A bad record after a commit is not a failover: exit 1, DIR at checkpoint 2.
broken = bytearray(ckpt4)
broken[len(ckpt2):len(ckpt2) + 4] = struct.pack("<I", 0x7ffffff0)  # an unknown libxl record type
r, rc = remus("remus-bad-record", xl_header(CONFIG) + bytes(broken))
m = manifest(r.out)
check("remus bad record in checkpoint 3: exit 1, DIR at checkpoint 2",
      rc == 1 and m is not None and m["checkpoints"]["committed"] == 2 and m["status"] != "complete"
      and memory(r.out) == ref2, "rc %d %s %s" % (rc, m and m["status"], r.stderr[-300:]))

# Remus and a COLO stream: Xen's Remus secondary cannot read CHECKPOINT_STATE.
colo = gen("colo.libxl", "--checkpoints", "3", "--dirty-pages", "20", "--colo")
r, rc = remus("remus-colo-stream", xl_header(CONFIG) + colo)
check("remus mode, COLO stream: exit 1", rc == 1, "rc %d %s" % (rc, r.stderr[-300:]))

# 8. xl remus --colo: the primary side of the back channel
#    (libxl_colo_save.c: read SVM_READY, SVM_RESUMED after a checkpoint; write
#    CHECKPOINT_STATE(NEW), read SVM_SUSPENDED, then xg_sr_save.c
#    colo_merge_secondary_dirty_bitmap reads a libxc record
#    CHECKPOINT_DIRTY_PFN_LIST).
LIBXL_CHECKPOINT_END, LIBXL_CHECKPOINT_STATE, LIBXL_LIBXC_CONTEXT = 4, 5, 1
LIBXC_END, LIBXC_CHECKPOINT = 0, 0x0E


def state_record(ident):
    """libxl_stream_write.c: a CHECKPOINT_STATE record, padded to 8 octets."""
    return struct.pack("<III", LIBXL_CHECKPOINT_STATE, 4, ident) + b"\0" * 4


SVM_SUSPENDED, SVM_READY, SVM_RESUMED = state_record(1), state_record(2), state_record(3)
DIRTY_EMPTY = struct.pack("<II", 0x0F, 0)  # the record header only: no pfns


def colo_segments(stream):
    """Splits a libxl COLO stream into (data up to and including a
    CHECKPOINT_END, the CHECKPOINT_STATE after it or None) pairs."""
    pos, libxc, segs, start = 16, False, [], 0  # after the libxl header

    def rec(at):
        t, n = struct.unpack_from("<II", stream, at)
        return t, at + 8 + ((n + 7) & ~7)

    while pos < len(stream):
        if libxc == "header":
            pos += 24 + 16  # image header and domain header
            libxc = True
            continue
        t, nxt = rec(pos)
        if libxc:
            if t in (LIBXC_CHECKPOINT, LIBXC_END):
                libxc = False
            pos = nxt
            continue
        if t == LIBXL_LIBXC_CONTEXT:
            libxc = "header"
            pos = nxt
            continue
        pos = nxt
        if t == LIBXL_CHECKPOINT_END:
            state = None
            if pos < len(stream) and rec(pos)[0] == LIBXL_CHECKPOINT_STATE:
                state = stream[pos:rec(pos)[1]]
                pos = rec(pos)[1]
            segs.append((stream[start:pos - (len(state) if state else 0)], state))
            start = pos
            libxc = True  # the next checkpoint's libxc records follow directly
    return segs, stream[start:]


colo = gen("colo3.libxl", "--checkpoints", "3", "--dirty-pages", "20", "--colo")
segs, tail = colo_segments(colo)
check("colo stream splits into 3 checkpoints, each followed by CHECKPOINT_STATE(NEW)",
      len(segs) == 3 and all(st == state_record(0) for _, st in segs[:2]) and tail == b"",
      "%d segments, tail %d" % (len(segs), len(tail)))


def colo_primary(name, checkpoints, close_back_channel_after=None, args=("--colo",)):
    out = os.path.join(WORK, name)
    r = Receiver(list(args), out)
    want = [("recv", BANNER)]
    r.read_exact(len(BANNER))
    first = True
    for k, (data, st) in enumerate(segs[:checkpoints], 1):
        data = (xl_header(CONFIG) if first else b"") + data
        first = False
        r.send(data)
        want.append(("send", data))
        if close_back_channel_after is not None and k > close_back_channel_after:
            break
        r.read_exact(16)
        r.read_exact(16)
        want += [("recv", SVM_READY), ("recv", SVM_RESUMED)]
        if close_back_channel_after == k:
            r.p.stdout.close()  # the primary's reading end goes away
            r.send(st)
            want.append(("send", st))
            continue
        if st is not None and k < checkpoints:
            r.send(st)
            r.read_exact(16)
            r.read_exact(8)
            want += [("send", st), ("recv", SVM_SUSPENDED), ("recv", DIRTY_EMPTY)]
    if close_back_channel_after is None:
        rc = r.finish()  # xl destroy of the primary: its side ends here
    else:
        r.hang_up()
        r.p.wait(TIMEOUT)
        r.stderr = r.p.stderr.read().decode(errors="replace")
        rc = r.p.returncode
    return r, rc, want


ref_colo = {}
for k in (1, 3):
    img = b"".join(d + (st or b"") for d, st in segs[:k - 1]) + segs[k - 1][0]
    ref_colo[k] = reference("colo%d" % k, img, "--colo")

r, rc, want = colo_primary("colo", 3)
expect_transcript("colo: 3 checkpoints, then the primary is destroyed", r, want)
m = manifest(r.out)
check("colo: exit 3, DIR at checkpoint 3, manifest says colo failover",
      rc == 3 and m is not None and m["status"] == "failover" and m["checkpoints"]["committed"] == 3
      and m["migration"]["mode"] == "colo" and m["migration"]["back_channel_messages"] == 3 * 2 + 2 * 2
      and memory(r.out) == ref_colo[3], "rc %d %s %s" % (rc, m and m.get("migration"), r.stderr[-400:]))

r, rc, want = colo_primary("colo-broken-back-channel", 3, close_back_channel_after=1)
expect_transcript("colo: the back channel breaks after checkpoint 1", r, want)
m = manifest(r.out)
check("colo: broken back channel: exit 3, DIR at checkpoint 1",
      rc == 3 and m is not None and m["status"] == "failover" and m["checkpoints"]["committed"] == 1
      and memory(r.out) == ref_colo[1], "rc %d %s" % (rc, r.stderr[-400:]))

for args in (["--colo", "--coloft-script", "/etc/xen/scripts/colo-proxy-setup", "--userspace-colo-proxy"],):
    r, rc, want = colo_primary("colo-options", 1, args=args)
    m = manifest(r.out)
    check("colo: xl's COLO options accepted and recorded",
          rc == 3 and m["migration"]["coloft_script"] == args[2] and m["migration"]["userspace_colo_proxy"] is True,
          "rc %d %s" % (rc, r.stderr[-300:]))

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
