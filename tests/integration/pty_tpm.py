#!/usr/bin/env python3
"""A stand-in for /dev/tpm0 (a TPM character device without a resource
manager) for tests/integration/device_tpm.sh: a pseudo-terminal in raw mode
whose slave path the module opens as "device:PATH"; each command read from
the master goes to swtpm's TCP port and the answer comes back, split in two
writes (the module must read a response that arrives in pieces).

  pty_tpm.py serve --tpm-port P --path-file F [--whole]
      serves until killed; F receives the slave's path; --whole writes each
      answer at once
  pty_tpm.py hold PATH SECONDS READY_FILE
      holds PATH open in exclusive mode (TIOCEXCL) for SECONDS, as another
      process holding /dev/tpm0 does: an open() without CAP_SYS_ADMIN gets
      EBUSY meanwhile; READY_FILE is created once it holds it
  pty_tpm.py overlap SECONDS PATH PID PID
      samples which of the two processes have PATH open, every millisecond,
      and prints "samples N open_a A open_b B both X"
"""
import argparse
import fcntl
import os
import pty
import socket
import sys
import termios
import time
import tty


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("swtpm closed the connection")
        out += chunk
    return out


def serve(args):
    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    # The slave stays open here too: with no opener left, the master would
    # read EIO between the module's turns.
    with open(args.path_file + ".tmp", "w") as f:
        f.write(path)
    os.rename(args.path_file + ".tmp", args.path_file)
    buf = b""
    while True:
        buf += os.read(master, 4096)
        while len(buf) >= 10:
            size = int.from_bytes(buf[2:6], "big")
            if len(buf) < size:
                break
            cmd, buf = buf[:size], buf[size:]
            with socket.create_connection(("127.0.0.1", args.tpm_port)) as s:
                s.sendall(cmd)
                head = recv_exact(s, 10)
                rsp = head + recv_exact(s, int.from_bytes(head[2:6], "big") - 10)
            if args.whole:
                os.write(master, rsp)
                continue
            os.write(master, rsp[:7])
            time.sleep(0.001)
            os.write(master, rsp[7:])


def hold(args):
    fd = os.open(args.path, os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(fd, termios.TIOCEXCL)
    open(args.ready, "w").close()
    time.sleep(args.seconds)
    fcntl.ioctl(fd, termios.TIOCNXCL)
    os.close(fd)


def overlap(args):
    def holds(pid):
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == args.path:
                        return True
                except OSError:
                    pass
        except OSError:
            pass
        return False

    n = a = b = both = 0
    end = time.time() + args.seconds
    while time.time() < end:
        ha, hb = holds(args.pids[0]), holds(args.pids[1])
        # The first again after the second: a switch between the two reads
        # (one closes, the other opens) is not an overlap.
        ha = ha and holds(args.pids[0])
        n += 1
        a += ha
        b += hb
        both += ha and hb
        time.sleep(0.001)
    print("samples %d open_a %d open_b %d both %d" % (n, a, b, both))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--tpm-port", type=int, required=True)
    p.add_argument("--path-file", required=True)
    p.add_argument("--whole", action="store_true",
                   help="each answer in one write (as tpm2-tss's device TCTI expects)")
    p = sub.add_parser("hold")
    p.add_argument("path")
    p.add_argument("seconds", type=float)
    p.add_argument("ready")
    p = sub.add_parser("overlap")
    p.add_argument("seconds", type=float)
    p.add_argument("path")
    p.add_argument("pids", type=int, nargs=2)
    args = ap.parse_args()
    {"serve": serve, "hold": hold, "overlap": overlap}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
