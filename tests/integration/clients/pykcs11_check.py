"""PyKCS11 against the token: sign, verify, OAEP, ECDH, and the refusals.

Usage: pykcs11_check.py MODULE PIN WORKDIR
WORKDIR holds msg (data to sign), oaep.ct (OpenSSL's OAEP-SHA256 ciphertext
of oaep.pt under the token's RSA key) and peer.point (a P-256 peer public
key, uncompressed). Writes rsa.sig, ec.sig (DER) and z.bin (the ECDH shared
secret) there for OpenSSL to check, and prints one "ok:" or "refused: CKR_..."
line per step; an unexpected outcome raises and exits non-zero.
"""
import ctypes
import hashlib
import os
import sys

import PyKCS11
from PyKCS11 import LowLevel as ll

module, pin, work = sys.argv[1:4]
read = lambda name: open(os.path.join(work, name), "rb").read()


def write(name, data):
    with open(os.path.join(work, name), "wb") as f:
        f.write(bytes(data))


def der_int(b):
    b = bytes(b).lstrip(b"\0") or b"\0"
    if b[0] & 0x80:
        b = b"\0" + b
    return b"\x02" + bytes([len(b)]) + b


def ecdsa_der(raw):  # PKCS#11's r || s as the DER that OpenSSL verifies
    half = len(raw) // 2
    body = der_int(raw[:half]) + der_int(raw[half:])
    return b"\x30" + bytes([len(body)]) + body


def refused(expected, call):
    try:
        call()
    except PyKCS11.PyKCS11Error as e:
        name = PyKCS11.CKR[e.value]
        if name != expected:
            raise SystemExit(f"expected {expected}, got {name}")
        print(f"refused: {name}")
        return
    raise SystemExit(f"expected {expected}, but the call succeeded")


# What the AWS IoT Device SDK (aws-c-io) checks first: C_GetFunctionList's
# table says exactly 2.40 (it refuses another major version).
fl = ctypes.POINTER(ctypes.c_ubyte * 2)()
assert ctypes.CDLL(module).C_GetFunctionList(ctypes.byref(fl)) == 0, "C_GetFunctionList failed"
print("ok: C_GetFunctionList version %d.%d" % tuple(fl.contents))

lib = PyKCS11.PyKCS11Lib()
lib.load(module)
print("ok: library:", lib.getInfo().libraryDescription.strip())
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getTokenInfo(s).label.strip() == "device")
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
refused("CKR_PIN_INCORRECT", lambda: session.login("9999"))
session.login(pin)


def key(cls, label):
    found = session.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, label)])
    assert len(found) == 1, f"{label}: {len(found)} objects"
    return found[0]


rsa, rsa_pub = key(PyKCS11.CKO_PRIVATE_KEY, "rsa-key"), key(PyKCS11.CKO_PUBLIC_KEY, "rsa-key")
ec, ec_pub = key(PyKCS11.CKO_PRIVATE_KEY, "ec-key"), key(PyKCS11.CKO_PUBLIC_KEY, "ec-key")
msg = read("msg")

# Sign and verify: RSA PKCS#1 v1.5, RSA-PSS, ECDSA.
mech = PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS)
sig = bytes(session.sign(rsa, msg, mech))
assert session.verify(rsa_pub, msg, sig, mech), "RSA signature does not verify in the token"
write("rsa.sig", sig)
pss = PyKCS11.RSA_PSS_Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS_PSS, PyKCS11.CKM_SHA256,
                                PyKCS11.CKG_MGF1_SHA256, 32)
pss_sig = bytes(session.sign(rsa, msg, pss))
assert session.verify(rsa_pub, msg, pss_sig, pss), "PSS signature does not verify"
write("pss.sig", pss_sig)
mech = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA_SHA256)
raw = bytes(session.sign(ec, msg, mech))
assert session.verify(ec_pub, msg, raw, mech), "ECDSA signature does not verify in the token"
write("ec.sig", ecdsa_der(raw))
print("ok: signed and verified (RSA PKCS#1 v1.5, RSA-PSS, ECDSA)")
# As the AWS IoT Device SDK signs: CKM_RSA_PKCS over a DigestInfo it built
# (the same bytes as CKM_SHA256_RSA_PKCS: v1.5 is deterministic), and
# CKM_ECDSA over the hash.
digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(msg).digest()
raw_rsa = bytes(session.sign(rsa, digest_info, PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS)))
assert raw_rsa == sig, "CKM_RSA_PKCS over the DigestInfo differs from CKM_SHA256_RSA_PKCS"
hashed = hashlib.sha256(msg).digest()
raw_ec = bytes(session.sign(ec, hashed, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA)))
assert session.verify(ec_pub, msg, raw_ec, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA_SHA256)), "CKM_ECDSA over the hash"
print("ok: CKM_RSA_PKCS over a DigestInfo and CKM_ECDSA over a hash (the AWS IoT SDK's calls)")
bad = bytearray(sig)
bad[10] ^= 1
if session.verify(rsa_pub, msg, bytes(bad), PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS)):
    raise SystemExit("a changed RSA signature verified")
print("refused: CKR_SIGNATURE_INVALID")  # PyKCS11's verify() returns False for exactly that CKR

# OAEP: OpenSSL's ciphertext decrypts in the TPM; a round trip in the token.
oaep = PyKCS11.RSAOAEPMechanism(PyKCS11.CKM_SHA256, PyKCS11.CKG_MGF1_SHA256)
assert bytes(session.decrypt(rsa, read("oaep.ct"), oaep)) == read("oaep.pt"), "OAEP plaintext differs"
ct = bytes(session.encrypt(rsa_pub, b"round trip", oaep))
assert bytes(session.decrypt(rsa, ct, oaep)) == b"round trip", "OAEP round trip differs"
print("ok: OAEP-SHA256 decrypts OpenSSL's ciphertext; encrypt/decrypt round trip")
bad = bytearray(read("oaep.ct"))
bad[-1] ^= 1
refused("CKR_ENCRYPTED_DATA_INVALID", lambda: session.decrypt(rsa, bytes(bad), oaep))

# ECDH: the raw shared secret, readable so OpenSSL can compare it.
template = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
            (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_GENERIC_SECRET),
            (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_FALSE),
            (PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_TRUE)]
shared = session.deriveKey(ec, template, PyKCS11.ECDH1_DERIVE_Mechanism(read("peer.point")))
write("z.bin", session.getAttributeValue(shared, [PyKCS11.CKA_VALUE])[0])
print("ok: ECDH derive")
bad_point = bytearray(read("peer.point"))
bad_point[-1] ^= 1  # no longer on the curve
refused("CKR_MECHANISM_PARAM_INVALID",
        lambda: session.deriveKey(ec, template, PyKCS11.ECDH1_DERIVE_Mechanism(bytes(bad_point))))
# A key of the wrong type for the mechanism.
refused("CKR_KEY_TYPE_INCONSISTENT",
        lambda: session.sign(ec, msg, PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS)))
session.logout()
session.closeSession()
