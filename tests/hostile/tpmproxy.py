#!/usr/bin/env python3
"""A hostile TPM bus for the tests: a TCP proxy between a swtpm TCTI client
(`swtpm:host=127.0.0.1,port=P`) and swtpm, on P (commands) and P+1 (control).

It parses the TPM 2.0 framing (tag, size, code), logs every command and
response in hex with the command's name, and mutates responses by rules read
from a JSON control file (re-read whenever the test rewrites it) or given on
the command line, or at random with a seed and a rate.

Rules (a JSON list, or {"rules": [...], "random": {...}} in the control file):
  {"kind": K, "cc": "Sign" | 0x15d, "index": N, "nth": N, "count": N, ...}
    cc     match this command (name or number); absent: any
    index  match the N-th response (0-based) since the rules were loaded
    nth    match the N-th response (0-based) of this cc since then
    after  match only the response to the command right after this one
           (name or number), e.g. the flush that follows an NV_Write
    count  apply at most N times (default 1; 0 = always)
  kinds:
    flip           flip `bits` (default 1) random bits anywhere (the header too)
    flip_params    the same, inside the response parameter area
    rc             replace the whole response by a bare error `rc`
                   ("NV_SPACE", "AUTH_FAIL", "HIERARCHY", ... or a number)
    truncate       cut to `keep` bytes (default: half), size field unchanged,
                   then close the connection
    truncate_fix   the same, size field fixed to the new length
    inflate        set the first TPM2B size of the parameter area to 0xffff
                   (`offset` picks another u16 in the parameter area)
    param_size     set a session response's parameterSize to `value`
                   (default 0xfffffff0)
    replay         answer with the last response recorded for another command
                   (`from`: that command; default the last one of another cc)
    stall_half     send half of the response, then nothing more
    stall          send nothing
    drop           close the connection instead of answering
    substitute_primary
                   in a CreatePrimary or ReadPublic answer carrying an ECC key,
                   put the P-256 generator G (private key 1) as the public
                   point and fix the name (and qualified name) so it parses
    set_bits       OR `mask` into the u32 at `offset` of the parameter area
                   (e.g. TPMA_PERMANENT's ownerAuthSet bit in GetCapability)
    patch          write `hex` at `offset` of the parameter area
    xor            XOR `hex` into the parameter area at `offset`
                   (offsets < 0 count from the end of the parameter area)
  "match": "hex"   only responses to commands whose bytes contain this hex
  "random": {"seed": S, "rate": 0.3, "kinds": [...] or "weights": {kind: w},
             "skip": ["Startup"]}
    mutates that fraction of responses with random kinds and logs each one.

Log lines ("<log>"): "> N CC hex" (command), "< N CC rc=0x.. hex" (response
as the TPM sent it), "! N CC kind {...}" (a mutation), "# ..." (events).
Mutations are also appended as JSON lines to <log>.mutations; on SIGTERM or
SIGINT the proxy prints and logs its counts (answers, mutations by kind).
Standard library only.
"""
import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time

CC_NAMES = {
    0x11F: "NV_UndefineSpaceSpecial", 0x120: "EvictControl", 0x121: "HierarchyControl",
    0x122: "NV_UndefineSpace", 0x124: "ChangeEPS", 0x125: "ChangePPS", 0x126: "Clear",
    0x127: "ClearControl", 0x128: "ClockSet", 0x129: "HierarchyChangeAuth",
    0x12A: "NV_DefineSpace", 0x12B: "PCR_Allocate", 0x12C: "PCR_SetAuthPolicy",
    0x12D: "PP_Commands", 0x12E: "SetPrimaryPolicy", 0x130: "ClockRateAdjust",
    0x131: "CreatePrimary", 0x132: "NV_GlobalWriteLock", 0x133: "GetCommandAuditDigest",
    0x134: "NV_Increment", 0x135: "NV_SetBits", 0x136: "NV_Extend", 0x137: "NV_Write",
    0x138: "NV_WriteLock", 0x139: "DictionaryAttackLockReset",
    0x13A: "DictionaryAttackParameters", 0x13B: "NV_ChangeAuth", 0x13C: "PCR_Event",
    0x13D: "PCR_Reset", 0x13E: "SequenceComplete", 0x13F: "SetAlgorithmSet",
    0x140: "SetCommandCodeAuditStatus", 0x142: "IncrementalSelfTest", 0x143: "SelfTest",
    0x144: "Startup", 0x145: "Shutdown", 0x146: "StirRandom", 0x147: "ActivateCredential",
    0x148: "Certify", 0x149: "PolicyNV", 0x14A: "CertifyCreation", 0x14B: "Duplicate",
    0x14C: "GetTime", 0x14D: "GetSessionAuditDigest", 0x14E: "NV_Read", 0x14F: "NV_ReadLock",
    0x150: "ObjectChangeAuth", 0x151: "PolicySecret", 0x152: "Rewrap", 0x153: "Create",
    0x154: "ECDH_ZGen", 0x155: "HMAC", 0x156: "Import", 0x157: "Load", 0x158: "Quote",
    0x159: "RSA_Decrypt", 0x15B: "HMAC_Start", 0x15C: "SequenceUpdate", 0x15D: "Sign",
    0x15E: "Unseal", 0x160: "PolicySigned", 0x161: "ContextLoad", 0x162: "ContextSave",
    0x163: "ECDH_KeyGen", 0x164: "EncryptDecrypt", 0x165: "FlushContext",
    0x167: "LoadExternal", 0x168: "MakeCredential", 0x169: "NV_ReadPublic",
    0x16A: "PolicyAuthorize", 0x16B: "PolicyAuthValue", 0x16C: "PolicyCommandCode",
    0x16D: "PolicyCounterTimer", 0x16E: "PolicyCpHash", 0x16F: "PolicyLocality",
    0x170: "PolicyNameHash", 0x171: "PolicyOR", 0x172: "PolicyTicket", 0x173: "ReadPublic",
    0x174: "RSA_Encrypt", 0x176: "StartAuthSession", 0x177: "VerifySignature",
    0x178: "ECC_Parameters", 0x17A: "GetCapability", 0x17B: "GetRandom",
    0x17C: "GetTestResult", 0x17D: "Hash", 0x17E: "PCR_Read", 0x17F: "PolicyPCR",
    0x180: "PolicyRestart", 0x181: "ReadClock", 0x182: "PCR_Extend", 0x183: "PCR_SetAuthValue",
    0x184: "NV_Certify", 0x185: "EventSequenceComplete", 0x186: "HashSequenceStart",
    0x187: "PolicyPhysicalPresence", 0x188: "PolicyDuplicationSelect",
    0x189: "PolicyGetDigest", 0x18A: "TestParms", 0x18B: "Commit", 0x18C: "PolicyPassword",
    0x18D: "ZGen_2Phase", 0x18E: "EC_Ephemeral", 0x18F: "PolicyNvWritten",
    0x190: "PolicyTemplate", 0x191: "CreateLoaded", 0x192: "PolicyAuthorizeNV",
    0x193: "EncryptDecrypt2",
}
CC_BY_NAME = {v.lower(): k for k, v in CC_NAMES.items()}

RC_BY_NAME = {
    "SUCCESS": 0x000, "FAILURE": 0x101, "INITIALIZE": 0x100, "COMMAND_CODE": 0x143,
    "NV_RANGE": 0x146, "NV_LOCKED": 0x148, "NV_AUTHORIZATION": 0x149,
    "NV_UNINITIALIZED": 0x14A, "NV_SPACE": 0x14B, "NV_DEFINED": 0x14C,
    "VALUE": 0x084, "HIERARCHY": 0x085, "HANDLE": 0x08B, "AUTH_FAIL": 0x98E,
    "BAD_AUTH": 0x9A2, "POLICY_FAIL": 0x99D, "SIZE": 0x095, "INTEGRITY": 0x09F,
    "INSUFFICIENT": 0x09A, "LOCKOUT": 0x921, "RETRY": 0x922, "NV_UNAVAILABLE": 0x923,
    "NV_RATE": 0x920, "TESTING": 0x90A, "YIELDED": 0x908, "CANCELED": 0x909,
    "MEMORY": 0x904, "OBJECT_MEMORY": 0x902, "SESSION_MEMORY": 0x903,
    "REFERENCE_H0": 0x910, "AUTH_MISSING": 0x125, "PCR_CHANGED": 0x928,
}

# Commands whose response carries one handle before the parameters.
RESPONSE_HANDLES = {0x131, 0x157, 0x167, 0x176, 0x15B, 0x186, 0x161, 0x191}

# NIST P-256 base point G: the attacker's public key with private key 1.
P256_GX = bytes.fromhex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
P256_GY = bytes.fromhex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")

RANDOM_KINDS = ["flip", "flip_params", "rc", "truncate", "truncate_fix", "inflate",
                "param_size", "replay", "stall_half", "stall", "drop"]
RANDOM_WEIGHTS = [14, 20, 16, 8, 8, 10, 8, 8, 2, 2, 4]
RANDOM_RCS = ["FAILURE", "NV_SPACE", "AUTH_FAIL", "BAD_AUTH", "HIERARCHY", "LOCKOUT",
              "NV_UNINITIALIZED", "NV_DEFINED", "OBJECT_MEMORY", "SESSION_MEMORY",
              "RETRY", "INTEGRITY", "POLICY_FAIL", "VALUE", "HANDLE", "NV_AUTHORIZATION"]


def cc_name(cc):
    return CC_NAMES.get(cc, "0x%x" % cc)


def parse_cc(v):
    if v is None or isinstance(v, int):
        return v
    if isinstance(v, str) and v.lower().startswith("0x"):
        return int(v, 16)
    try:
        return CC_BY_NAME[v.lower()]
    except KeyError:
        raise SystemExit("tpmproxy: unknown command code %r" % v)


def parse_rc(v):
    if isinstance(v, int):
        return v
    if v.lower().startswith("0x"):
        return int(v, 16)
    return RC_BY_NAME[v.upper()]


def be16(b, o):
    return int.from_bytes(b[o:o + 2], "big")


def be32(b, o):
    return int.from_bytes(b[o:o + 4], "big")


def param_area(resp, cc):
    """(start, end) of the response parameters, or None if there are none."""
    if len(resp) < 10 or be32(resp, 6) != 0:
        return None
    start = 10 + (4 if cc in RESPONSE_HANDLES else 0)
    if be16(resp, 0) == 0x8002:  # TPM_ST_SESSIONS: parameterSize first
        if len(resp) < start + 4:
            return None
        size = be32(resp, start)
        start += 4
        end = min(len(resp), start + size)
    else:
        end = len(resp)
    return (start, end) if end > start else None


def _skip_ecc_parms(b, o):
    """Offset past TPMS_ECC_PARMS at o (symmetric, scheme, curveID, kdf)."""
    sym = be16(b, o); o += 2
    if sym != 0x0010:  # TPM_ALG_NULL
        o += 4  # keyBits, mode
    scheme = be16(b, o); o += 2
    if scheme != 0x0010:
        o += 2  # hashAlg
    o += 2  # curveID
    kdf = be16(b, o); o += 2
    if kdf != 0x0010:
        o += 2
    return o


def substitute_primary(resp, cc):
    """Replaces an ECC public point in a CreatePrimary/ReadPublic answer with
    G and fixes the name(s); returns (new response, note) or (None, why)."""
    area = param_area(resp, cc)
    if area is None:
        return None, "no parameters"
    b = bytearray(resp)
    o = area[0]
    pub_size = be16(b, o)
    pub_start = o + 2
    t = pub_start
    if be16(b, t) != 0x0023:  # TPM_ALG_ECC
        return None, "not an ECC key"
    name_alg = be16(b, t + 2)
    t += 8  # type, nameAlg, objectAttributes
    t += 2 + be16(b, t)  # authPolicy
    t = _skip_ecc_parms(b, t)
    xs = be16(b, t)
    ys = be16(b, t + 2 + xs)
    if xs != 32 or ys != 32:
        return None, "not a P-256 point"
    b[t + 2:t + 34] = P256_GX
    b[t + 36:t + 68] = P256_GY
    pub_end = pub_start + pub_size
    if name_alg != 0x000B:
        return bytes(b), "point replaced (name not fixed: nameAlg 0x%x)" % name_alg
    name = b"\x00\x0b" + hashlib.sha256(bytes(b[pub_start:pub_end])).digest()
    o = pub_end
    if cc == 0x131:  # creationData, creationHash, creationTicket, name
        o += 2 + be16(b, o)
        o += 2 + be16(b, o)
        o += 6
        o += 2 + be16(b, o)
    if be16(b, o) != len(name):
        return None, "unexpected name size"
    b[o + 2:o + 2 + len(name)] = name
    if cc == 0x173:  # qualifiedName = H(owner hierarchy's name || name)
        o += 2 + len(name)
        if be16(b, o) == len(name):
            qn = b"\x00\x0b" + hashlib.sha256((0x40000001).to_bytes(4, "big") + name).digest()
            b[o + 2:o + 2 + len(qn)] = qn
    return bytes(b), "unique point set to the P-256 generator, name " + name.hex()


class Proxy:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1)
        self.mlog = open(args.log + ".mutations", "a", buffering=1)
        self.rules = []
        self.random = None
        self.rng = random.Random()
        self.index = 0  # responses since the rules were (re)loaded
        self.total = 0
        self.prev_cc = None
        self.per_cc = {}
        self.recorded = {}  # cc -> last response the TPM gave
        self.control_mtime = None
        self.counts = {}
        if args.rules:
            self.set_rules(json.loads(args.rules))
        if args.seed is not None:
            self.set_random({"seed": args.seed, "rate": args.rate})

    def emit(self, line):
        self.log.write(line + "\n")

    def set_rules(self, spec):
        if isinstance(spec, dict):
            rules = spec.get("rules", [])
            self.set_random(spec.get("random"))
        else:
            rules = spec
            self.random = None
        self.rules = []
        for r in rules:
            r = dict(r)
            r["cc"] = parse_cc(r.get("cc"))
            r.setdefault("count", 1)
            r["used"] = 0
            self.rules.append(r)
        self.index = 0
        self.per_cc = {}
        self.emit("# rules %s" % json.dumps(rules))

    def set_random(self, spec):
        if not spec:
            self.random = None
            return
        self.random = dict(spec)
        self.random.setdefault("rate", 0.2)
        self.rng = random.Random(self.random["seed"])
        self.random["skip"] = {parse_cc(c) for c in self.random.get("skip", [])}
        self.emit("# random seed=%s rate=%s" % (self.random["seed"], self.random["rate"]))

    def reload(self):
        path = self.args.control
        if not path:
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self.control_mtime:
            return
        self.control_mtime = key
        with open(path) as f:
            text = f.read()
        self.set_rules(json.loads(text) if text.strip() else [])

    def choose(self, cc, cmd):
        """The mutation for this response (a rule dict) or None."""
        self.reload()
        idx = self.index
        nth = self.per_cc.get(cc, 0)
        self.index += 1
        self.per_cc[cc] = nth + 1
        self.total += 1
        prev, self.prev_cc = self.prev_cc, cc
        for r in self.rules:
            if r["cc"] is not None and r["cc"] != cc:
                continue
            if "after" in r and parse_cc(r["after"]) != prev:
                continue
            if "index" in r and r["index"] != idx:
                continue
            if "nth" in r and r["nth"] != nth:
                continue
            if r["count"] and r["used"] >= r["count"]:
                continue
            if "match" in r and bytes.fromhex(r["match"]) not in cmd:
                continue
            r["used"] += 1
            return r
        rnd = self.random
        if rnd and cc not in rnd["skip"] and self.rng.random() < rnd["rate"]:
            kinds = rnd.get("kinds")
            weights = rnd.get("weights")
            if kinds:
                kind = self.rng.choice(kinds)
            elif weights:
                names = sorted(weights)
                kind = self.rng.choices(names, [weights[k] for k in names])[0]
            else:
                kind = self.rng.choices(RANDOM_KINDS, RANDOM_WEIGHTS)[0]
            r = {"kind": kind, "random": True}
            if kind == "rc":
                r["rc"] = self.rng.choice(RANDOM_RCS)
            if kind in ("flip", "flip_params"):
                r["bits"] = self.rng.choice([1, 1, 1, 2, 8])
            return r
        return None

    def apply(self, rule, resp, cc):
        """Returns (bytes to send or None, action, note); action is
        'send', 'stall', 'drop'."""
        k = rule["kind"]
        rng = self.rng if rule.get("random") else random.Random(self.total)
        if k in ("flip", "flip_params"):
            if k == "flip":
                lo, hi = 0, len(resp)
            else:
                area = param_area(resp, cc)
                if area is None:  # a bare answer: its response code
                    lo, hi = 6, len(resp)
                else:
                    lo, hi = area
            if hi <= lo:
                lo, hi = 0, len(resp)
            b = bytearray(resp)
            where = []
            for _ in range(rule.get("bits", 1)):
                bit = rng.randrange(lo * 8, hi * 8)
                b[bit // 8] ^= 0x80 >> (bit % 8)
                where.append(bit)
            return bytes(b), "send", "bits %s" % where
        if k == "rc":
            rc = parse_rc(rule.get("rc", "FAILURE"))
            tag = 0x8001
            return tag.to_bytes(2, "big") + (10).to_bytes(4, "big") + rc.to_bytes(4, "big"), \
                "send", "rc=0x%x" % rc
        if k in ("truncate", "truncate_fix"):
            keep = rule.get("keep")
            if keep is None:
                keep = rng.randrange(0, len(resp)) if rule.get("random") else len(resp) // 2
            keep = max(0, min(keep, len(resp) - 1))
            b = bytearray(resp[:keep])
            if k == "truncate_fix" and keep >= 6:
                b[2:6] = keep.to_bytes(4, "big")
                return bytes(b), "send", "kept %d of %d" % (keep, len(resp))
            # The size field still claims the whole answer: the rest never
            # comes, the connection ends.
            return bytes(b), "close", "kept %d of %d, then closed" % (keep, len(resp))
        if k == "inflate":
            area = param_area(resp, cc)
            if area is None:
                return resp, "send", "no parameter area (unchanged)"
            off = area[0] + rule.get("offset", 0)
            if off + 2 > len(resp):
                return resp, "send", "offset past the end (unchanged)"
            b = bytearray(resp)
            b[off:off + 2] = (rule.get("value", 0xFFFF)).to_bytes(2, "big")
            return bytes(b), "send", "u16 at %d set to 0x%x" % (off, rule.get("value", 0xFFFF))
        if k == "param_size":
            if be16(resp, 0) != 0x8002 or be32(resp, 6) != 0:
                return resp, "send", "no session area (unchanged)"
            off = 10 + (4 if cc in RESPONSE_HANDLES else 0)
            b = bytearray(resp)
            v = rule.get("value", 0xFFFFFFF0)
            b[off:off + 4] = v.to_bytes(4, "big")
            return bytes(b), "send", "parameterSize set to 0x%x" % v
        if k == "replay":
            src = parse_cc(rule.get("from"))
            if src is None:
                others = [c for c in self.recorded if c != cc]
                src = rng.choice(sorted(others)) if others else None
            if src is None or src not in self.recorded:
                return resp, "send", "nothing recorded to replay (unchanged)"
            return self.recorded[src], "send", "answered with a %s response" % cc_name(src)
        if k == "stall_half":
            return resp[:len(resp) // 2], "stall", "sent %d of %d, then nothing" % (
                len(resp) // 2, len(resp))
        if k == "stall":
            return b"", "stall", "sent nothing"
        if k == "drop":
            return None, "drop", "connection closed"
        if k == "substitute_primary":
            if cc not in (0x131, 0x173):
                return resp, "send", "not CreatePrimary/ReadPublic (unchanged)"
            new, note = substitute_primary(resp, cc)
            return (new if new is not None else resp), "send", note
        if k in ("set_bits", "patch", "xor"):
            area = param_area(resp, cc)
            if area is None:
                return resp, "send", "no parameter area (unchanged)"
            b = bytearray(resp)
            rel = rule.get("offset", 0)
            off = (area[1] if rel < 0 else area[0]) + rel
            if k == "set_bits":
                v = be32(b, off) | rule["mask"]
                b[off:off + 4] = v.to_bytes(4, "big")
                return bytes(b), "send", "u32 at %d |= 0x%x" % (off, rule["mask"])
            data = bytes.fromhex(rule["hex"])
            if k == "xor":
                for i, x in enumerate(data):
                    b[off + i] ^= x
                return bytes(b), "send", "xored %d bytes at %d" % (len(data), off)
            b[off:off + len(data)] = data
            return bytes(b), "send", "patched %d bytes at %d" % (len(data), off)
        raise SystemExit("tpmproxy: unknown kind %r" % k)

    # One client connection on the command port: frames in, frames out.
    def serve_command(self, client):
        upstream = None
        try:
            while True:
                cmd = read_frame(client)
                if cmd is None:
                    return
                cc = be32(cmd, 6) if len(cmd) >= 10 else 0
                with self.lock:
                    n = self.total
                    self.emit("> %d %s %s" % (n, cc_name(cc), cmd.hex()))
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.args.tpm_port))
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                upstream.sendall(cmd)
                resp = read_frame(upstream)
                # swtpm serves one connection at a time: release it now, not
                # when the client hangs up, so the next command's connect
                # does not wait on this client (~3 ms per command).
                upstream.close()
                upstream = None
                if resp is None:
                    self.emit("# %d upstream closed" % n)
                    return
                with self.lock:
                    rc = be32(resp, 6) if len(resp) >= 10 else -1
                    self.emit("< %d %s rc=0x%x %s" % (n, cc_name(cc), rc, resp.hex()))
                    rule = self.choose(cc, cmd)
                    if rule is None:
                        out, action, note = resp, "send", None
                    else:
                        out, action, note = self.apply(rule, resp, cc)
                        # "waits": the client is left waiting for bytes that
                        # never come, and gives up only at its timeout.
                        waits = action == "stall" or (action == "send" and bool(out) and (
                            len(out) < 10 or be32(out, 2) > len(out)))
                        rec = {"n": n, "cc": cc_name(cc), "kind": rule["kind"], "note": note,
                               "random": bool(rule.get("random")), "waits": waits}
                        self.emit("! %d %s %s %s" % (n, cc_name(cc), rule["kind"], note))
                        self.mlog.write(json.dumps(rec) + "\n")
                        self.counts[rule["kind"]] = self.counts.get(rule["kind"], 0) + 1
                        if out is not None and out != resp:
                            self.emit("<! %d %s %s" % (n, cc_name(cc), out.hex()))
                    if rc == 0:
                        self.recorded[cc] = resp
                if action == "drop":
                    return
                if out:
                    client.sendall(out)
                if action == "close":
                    return
                if action == "send" and out and (len(out) < 10 or be32(out, 2) > len(out)):
                    action = "stall"  # the client waits for bytes that never come
                if action == "stall":
                    # The TPM's connection is released (swtpm serves one at a
                    # time); the client waits on this one until it gives up.
                    if self.args.stall_max:
                        client.settimeout(self.args.stall_max)
                    try:
                        while client.recv(65536):
                            pass
                    except socket.timeout:
                        self.emit("# %d stalled connection closed after %s s" % (
                            n, self.args.stall_max))
                    return
        except OSError as e:
            self.emit("# connection error: %s" % e)
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def serve_control(self, client):
        """The control port (locality, init, cancel): passed through as is."""
        try:
            upstream = socket.create_connection(("127.0.0.1", self.args.tpm_port + 1))
        except OSError:
            client.close()
            return
        def pump(a, b, tag):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    self.emit("# ctrl%s %s" % (tag, d.hex()))
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        t = threading.Thread(target=pump, args=(upstream, client, "<"), daemon=True)
        t.start()
        pump(client, upstream, ">")
        t.join()
        client.close()
        upstream.close()


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            return None if not buf else buf
        buf += d
    return buf


def read_frame(sock):
    hdr = read_exact(sock, 10)
    if hdr is None or len(hdr) < 10:
        return None
    size = be32(hdr, 2)
    if size <= 10:
        return hdr
    rest = read_exact(sock, min(size, 1 << 16) - 10)
    return hdr + (rest or b"")


def listen_pair(port):
    """Two listening sockets on port and port+1 (port 0: a free pair)."""
    for _ in range(200):
        p = port or random.randrange(20000, 60000, 2)
        socks = []
        try:
            for q in (p, p + 1):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", q))
                s.listen(8)
                socks.append(s)
            return p, socks
        except OSError:
            for s in socks:
                s.close()
            if port:
                raise
    raise SystemExit("tpmproxy: no free port pair")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tpm-port", type=int, required=True, help="swtpm's command port")
    ap.add_argument("--port", type=int, default=0, help="listen here and +1 (0: free pair)")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--log", required=True)
    ap.add_argument("--control", help="JSON rules file, re-read when it changes")
    ap.add_argument("--rules", help="JSON rules (as in the control file)")
    ap.add_argument("--seed", type=int, help="random mode with this seed")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--stall-max", type=float, default=0,
                    help="close a stalled connection after this many seconds (0: never)")
    args = ap.parse_args()
    proxy = Proxy(args)
    port, (cmd_sock, ctl_sock) = listen_pair(args.port)
    proxy.emit("# listening on %d/%d for swtpm %d" % (port, port + 1, args.tpm_port))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)

    def accept(sock, handler):
        while True:
            c, _ = sock.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handler, args=(c,), daemon=True).start()

    def summary(*_):
        line = "# %d answers, mutations: %s" % (
            proxy.total, json.dumps(proxy.counts, sort_keys=True))
        proxy.emit(line)
        print("tpmproxy: " + line[2:], flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, summary)
    signal.signal(signal.SIGINT, summary)
    threading.Thread(target=accept, args=(ctl_sock, proxy.serve_control), daemon=True).start()
    accept(cmd_sock, proxy.serve_command)


if __name__ == "__main__":
    sys.exit(main())
