#!/usr/bin/env python3
"""A TCP proxy between the module and swtpm's data port that tampers with
the NTH answer to command code CC (hex); every other command passes through.
MODE stall: that answer goes out up to its middle, then the connection hangs.
MODE nvspace: the TPM's answer is replaced by TPM_RC_NV_SPACE.
MODE rc:HEX: the TPM's answer is replaced by that response code.
MODE log: nothing is changed; every command and answer is appended to
LISTEN_PORT_FILE.bus (a passive bus log).
MODE drop: the TPM runs the command, its answer is lost (connection closed).
MODE flip: one byte in the middle of that answer's parameters is flipped.
MODE fuzz: CC is a seed and NTH a percentage: that share of answers gets a
random mutation (bit flip, truncation with or without a size fix, a huge
TPM2B size, another response code, a dropped answer); see proxy log.
MODE paramsize: the answer's parameterSize claims 0xFFFFFFFF bytes.
MODE notag: a session answer's tag says "no sessions" (0x8001).
MODE ownerauth: in a TPM2_GetCapability answer, TPMA_PERMANENT ownerAuthSet
is flipped (with no session, as before; with one, the HMAC no longer fits).
CC may name the command's first handle too, CC@HANDLE (both hex): only
commands on that handle count, so a test is not thrown off by another
command of the same code that the module sends first.
Usage: bus_proxy.py LISTEN_PORT_FILE UPSTREAM_PORT CC[@HANDLE] NTH MODE"""
import socket, sys, threading, time

port_file, upstream, nth = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
cc, _, on_handle = sys.argv[3].partition("@")
cc = int(cc, 16)
on_handle = int(on_handle, 16) if on_handle else None
mode = sys.argv[5]
seen = 0
import random
rng = random.Random(cc)
lock = threading.Lock()

def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out

def serve(client):
    global seen
    try:
        up = socket.create_connection(("127.0.0.1", upstream))
        head = read_exact(client, 10)
        cmd = head + read_exact(client, int.from_bytes(head[2:6], "big") - 10)
        up.sendall(cmd)
        rhead = read_exact(up, 10)
        rsp = rhead + read_exact(up, int.from_bytes(rhead[2:6], "big") - 10)
        up.close()
        if mode == "log":
            with lock, open(port_file + ".bus", "ab") as log:
                log.write(cmd + rsp)
        if mode == "fuzz":
            with lock:
                hit = rng.randrange(100) < nth
                kind = rng.randrange(6)
                pos = rng.randrange(10, max(11, len(rsp)))
                bit = rng.randrange(8)
            if hit:
                b = bytearray(rsp)
                if kind == 0 and len(b) > 10:
                    b[pos] ^= 1 << bit
                elif kind == 1:
                    b = b[:pos]
                elif kind == 2:
                    b = b[:pos]
                    b[2:6] = len(b).to_bytes(4, "big")
                elif kind == 3 and len(b) > 16:
                    at = min(pos, len(b) - 2)
                    b[at:at + 2] = b"\xff\xff"
                elif kind == 4:
                    b = bytearray((0x8001).to_bytes(2, "big") + (10).to_bytes(4, "big") +
                                  rng.choice([0x14B, 0x98E, 0x921, 0x101, 0x18B]).to_bytes(4, "big"))
                else:
                    print("fuzz: dropped", flush=True)
                    return
                print("fuzz: kind %d at %d" % (kind, pos), flush=True)
                rsp = bytes(b)
        match = int.from_bytes(cmd[6:10], "big") == cc
        if on_handle is not None:
            match = match and len(cmd) >= 14 and int.from_bytes(cmd[10:14], "big") == on_handle
        if mode == "ownerauth":  # only answers that carry TPM2_PT_PERMANENT count
            match = match and rsp.find((0x200).to_bytes(4, "big"), 10) > 0
        with lock:
            stall = match and (seen := seen + 1) == nth
        if stall and (mode == "nvspace" or mode.startswith("rc:")):
            code = 0x14B if mode == "nvspace" else int(mode[3:], 16)
            rsp = (0x8001).to_bytes(2, "big") + (10).to_bytes(4, "big") + code.to_bytes(4, "big")
            print("answered TPM_RC_NV_SPACE" if mode == "nvspace" else "answered rc 0x%x" % code,
                  flush=True)
        elif stall and mode == "ownerauth":
            b = bytearray(rsp)
            key = (0x200).to_bytes(4, "big")  # TPM2_PT_PERMANENT
            at = b.find(key, 10)
            if at > 0:
                b[at + 7] ^= 0x01
                print("flipped ownerAuthSet", flush=True)
            rsp = bytes(b)
        elif stall and mode == "paramsize" and rsp[0:2] == b"\x80\x02":
            rsp = rsp[:10] + b"\xff\xff\xff\xff" + rsp[14:]
            print("patched parameterSize", flush=True)
        if stall and mode == "notag" and rsp[0:2] == b"\x80\x02":
            rsp = b"\x80\x01" + rsp[2:]
            print("answered with the tag 'no sessions'", flush=True)
        if stall and mode == "flip":
            b = bytearray(rsp)
            b[len(b) // 2] ^= 0x01
            rsp = bytes(b)
            print("flipped a byte", flush=True)
        if stall and mode == "drop":
            print("dropped an answer", flush=True)
            return
        if stall and mode == "stall":
            client.sendall(rsp[: len(rsp) // 2])
            print("stalled a response of %d bytes" % len(rsp), flush=True)
            time.sleep(60)
        else:
            client.sendall(rsp)
    except (EOFError, OSError):
        pass
    finally:
        client.close()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(port_file, "w") as f:
    f.write(str(srv.getsockname()[1]))
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
