"""Answers OpenVPN's PKCS#11 PIN request over its management interface.

OpenVPN reads a token PIN only from a terminal or from the management
interface (--management ... --management-query-passwords); a service has no
terminal, so this is how it gets one. Usage: ovpn_pin.py PORT PIN
Prints each '>PASSWORD:' line it sees; answers every 'Need ... password'
request with PIN; exits once OpenVPN says it verified nothing more is needed
(the connection closes) or after 60 s.
"""
import socket
import sys
import time

port, pin = int(sys.argv[1]), sys.argv[2]
deadline = time.time() + 60
while True:
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            raise SystemExit("no management interface")
        time.sleep(0.1)
conn.settimeout(max(1, deadline - time.time()))
buf = b""
try:
    while True:
        data = conn.recv(4096)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.decode(errors="replace").strip()
            if line.startswith(">PASSWORD:"):
                print(line, flush=True)
                if line.startswith(">PASSWORD:Need '"):
                    kind = line.split("'")[1]
                    conn.sendall(f'password "{kind}" {pin}\n'.encode())
except socket.timeout:
    pass
