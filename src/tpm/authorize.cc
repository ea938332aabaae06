// Authorized boot states (authorize.h): the policy digests, the
// authorization file, and the TPM side: the boot epoch counter and the
// unseal through TPM2_PolicyAuthorize.
#include "tpm/authorize.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <tss2/tss2_mu.h>

#include <charconv>
#include <cstring>
#include <sstream>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"

namespace tpmtoken::tpm {
namespace {

constexpr TPMA_OBJECT kAuthorizerAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH;

// The boot epoch counter: only moves forward (a re-created index starts
// above every value a counter of this TPM held, Part 1, 37.2.8.2); readable
// by anyone (empty auth: TPM2_PolicyNV needs no secret at boot), incremented
// with the owner authorization (`tpmtoken boot revoke`).
constexpr TPMA_NV kEpochAttributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) |
                                     TPMA_NV_OWNERWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;

TPMS_NV_PUBLIC EpochPublic(uint32_t index, bool written) {
  TPMS_NV_PUBLIC p{};
  p.nvIndex = index;
  p.nameAlg = TPM2_ALG_SHA256;
  p.attributes = kEpochAttributes | (written ? TPMA_NV_WRITTEN : 0);
  p.dataSize = 8;
  return p;
}

Bytes Cat(std::initializer_list<ByteView> parts) {
  Bytes out;
  for (ByteView p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes Be64(uint64_t v) {
  Bytes out(8);
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<uint8_t>(v);
  return out;
}

Bytes Be16(uint16_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }

size_t CurveSize(uint16_t curve) {
  if (curve == TPM2_ECC_NIST_P256) return 32;
  if (curve == TPM2_ECC_NIST_P384) return 48;
  return 0;
}

std::optional<Bytes> Unhex(std::string_view s) {
  if (s.size() % 2) return std::nullopt;
  Bytes out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto [p, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, out[i], 16);
    if (ec != std::errc() || p != s.data() + 2 * i + 2) return std::nullopt;
  }
  return out;
}

}  // namespace

size_t PcrBankSize(const std::string& bank) {
  if (bank == "sha1") return 20;
  if (bank == "sha384") return 48;
  if (bank == "sha512") return 64;
  return 32;
}

Bytes AuthorizerKey::Public() const {
  TPM2B_PUBLIC t{};
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = kAuthorizerAttributes;
  if (rsa) {
    t.publicArea.type = TPM2_ALG_RSA;
    auto& p = t.publicArea.parameters.rsaDetail;
    p.symmetric.algorithm = TPM2_ALG_NULL;
    p.scheme.scheme = TPM2_ALG_NULL;
    p.keyBits = static_cast<TPMI_RSA_KEY_BITS>(n.size() * 8);
    p.exponent = e == 65537 ? 0 : e;
    SetBuffer(t.publicArea.unique.rsa, n);
  } else {
    t.publicArea.type = TPM2_ALG_ECC;
    auto& p = t.publicArea.parameters.eccDetail;
    p.symmetric.algorithm = TPM2_ALG_NULL;
    p.scheme.scheme = TPM2_ALG_NULL;
    p.curveID = curve;
    p.kdf.scheme = TPM2_ALG_NULL;
    SetBuffer(t.publicArea.unique.ecc.x, x);
    SetBuffer(t.publicArea.unique.ecc.y, y);
  }
  return MarshalPublic(t);
}

std::optional<AuthorizerKey> AuthorizerKey::FromPublic(ByteView pub) {
  TPM2B_PUBLIC t{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub.data(), pub.size(), &off, &t) != TSS2_RC_SUCCESS ||
      off != pub.size())
    return std::nullopt;
  AuthorizerKey k;
  const TPMT_PUBLIC& a = t.publicArea;
  k.rsa = a.type == TPM2_ALG_RSA;
  if (k.rsa) {
    k.n.assign(a.unique.rsa.buffer, a.unique.rsa.buffer + a.unique.rsa.size);
    k.e = a.parameters.rsaDetail.exponent ? a.parameters.rsaDetail.exponent : 65537;
  } else {
    k.curve = a.parameters.eccDetail.curveID;
    k.x.assign(a.unique.ecc.x.buffer, a.unique.ecc.x.buffer + a.unique.ecc.x.size);
    k.y.assign(a.unique.ecc.y.buffer, a.unique.ecc.y.buffer + a.unique.ecc.y.size);
  }
  // Only the exact form this module makes: anything else is not ours.
  try {
    if (k.Public() != Bytes(pub.begin(), pub.end())) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return k;
}

Bytes PolicyPcrDigest(const PcrSelection& pcrs, ByteView values) {
  const TPML_PCR_SELECTION sel = ToTpmSelection(pcrs);
  uint8_t marshalled[sizeof(TPML_PCR_SELECTION)];
  size_t used = 0;
  Check(Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, marshalled, sizeof marshalled, &used),
        "marshalling the PCR selection");
  return crypto::Sha256(Cat({Bytes(32, 0), EncodeBe32(TPM2_CC_PolicyPCR),
                             ByteView(marshalled, used), crypto::Sha256(values)}));
}

Bytes ApprovedPolicy(const PcrSelection& pcrs, ByteView values, ByteView epoch_name,
                     uint64_t epoch) {
  const Bytes pcr = PolicyPcrDigest(pcrs, values);
  const Bytes args = crypto::Sha256(Cat({Be64(epoch), Be16(0), Be16(TPM2_EO_UNSIGNED_LE)}));
  return crypto::Sha256(Cat({pcr, EncodeBe32(TPM2_CC_PolicyNV), args, epoch_name}));
}

Bytes AuthorizationHash(ByteView approved) {
  return crypto::Sha256(Cat({approved, View(kBootPolicyRef)}));
}

Bytes AuthorizedPolicy(ByteView key_name) {
  const Bytes d = crypto::Sha256(Cat({Bytes(32, 0), EncodeBe32(TPM2_CC_PolicyAuthorize), key_name}));
  return crypto::Sha256(Cat({d, View(kBootPolicyRef)}));
}

Bytes PublicName(ByteView pub) {
  TPM2B_PUBLIC t{};
  size_t off = 0;
  Check(Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub.data(), pub.size(), &off, &t), "unmarshal a public area");
  return NameOf(t.publicArea);
}

std::optional<Bytes> TpmSignature(const AuthorizerKey& key, ByteView signature) {
  TPMT_SIGNATURE s{};
  if (key.rsa) {
    if (signature.size() != key.n.size()) return std::nullopt;
    s.sigAlg = TPM2_ALG_RSASSA;
    s.signature.rsassa.hash = TPM2_ALG_SHA256;
    SetBuffer(s.signature.rsassa.sig, signature);
  } else {
    const size_t size = CurveSize(key.curve);
    const unsigned char* p = signature.data();
    std::unique_ptr<ECDSA_SIG, crypto::Deleter<ECDSA_SIG_free>> sig(
        d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(signature.size())));
    if (!sig || p != signature.data() + signature.size() || size == 0) return std::nullopt;
    const BIGNUM* r = ECDSA_SIG_get0_r(sig.get());
    const BIGNUM* sv = ECDSA_SIG_get0_s(sig.get());
    if (static_cast<size_t>(BN_num_bytes(r)) > size || static_cast<size_t>(BN_num_bytes(sv)) > size)
      return std::nullopt;
    s.sigAlg = TPM2_ALG_ECDSA;
    s.signature.ecdsa.hash = TPM2_ALG_SHA256;
    s.signature.ecdsa.signatureR.size = static_cast<UINT16>(size);
    s.signature.ecdsa.signatureS.size = static_cast<UINT16>(size);
    BN_bn2binpad(r, s.signature.ecdsa.signatureR.buffer, static_cast<int>(size));
    BN_bn2binpad(sv, s.signature.ecdsa.signatureS.buffer, static_cast<int>(size));
  }
  Bytes out(sizeof(TPMT_SIGNATURE));
  size_t off = 0;
  if (Tss2_MU_TPMT_SIGNATURE_Marshal(&s, out.data(), out.size(), &off) != TSS2_RC_SUCCESS)
    return std::nullopt;
  out.resize(off);
  return out;
}

Bytes EcdsaDer(ByteView r_s) {
  std::unique_ptr<ECDSA_SIG, crypto::Deleter<ECDSA_SIG_free>> sig(ECDSA_SIG_new());
  const int half = static_cast<int>(r_s.size() / 2);
  if (!sig || !ECDSA_SIG_set0(sig.get(), BN_bin2bn(r_s.data(), half, nullptr),
                              BN_bin2bn(r_s.data() + half, half, nullptr)))
    throw std::bad_alloc();
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig.get(), &der);
  if (n <= 0) throw std::bad_alloc();
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

std::string BootAuthorization::Encode() const {
  std::ostringstream s;
  s << "tpmtoken-boot-authorization: 1\npcrs: " << pcrs.ToString() << "\nvalues: " << Hex(values)
    << "\nepoch: " << epoch << "\nsignature: " << Hex(signature) << "\n";
  return s.str();
}

BootAuthorization BootAuthorization::Parse(std::string_view text) {
  BootAuthorization a;
  bool header = false, have_pcrs = false, have_values = false, have_epoch = false, have_sig = false;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) throw std::invalid_argument(where + "no 'name: value'");
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    auto hex = [&](const char* what) {
      auto b = Unhex(value);
      if (!b || b->empty()) throw std::invalid_argument(where + what + " is not hexadecimal");
      return *b;
    };
    if (name == "tpmtoken-boot-authorization") {
      if (value != "1") throw std::invalid_argument(where + "version " + std::string(value) + " is not 1");
      header = true;
    } else if (name == "pcrs") {
      a.pcrs = PcrSelection::Parse(std::string(value));  // throws naming what is wrong
      if (a.pcrs.empty()) throw std::invalid_argument(where + "no PCRs selected");
      have_pcrs = true;
    } else if (name == "values") {
      a.values = hex("values");
      have_values = true;
    } else if (name == "epoch") {
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), a.epoch);
      if (ec != std::errc() || p != value.data() + value.size())
        throw std::invalid_argument(where + "epoch is not a decimal number");
      have_epoch = true;
    } else if (name == "signature") {
      a.signature = hex("signature");
      have_sig = true;
    } else {
      throw std::invalid_argument(where + "unknown field '" + std::string(name) + "'");
    }
  }
  if (!header) throw std::invalid_argument("not a tpmtoken boot authorization (no header line)");
  if (!have_pcrs || !have_values || !have_epoch || !have_sig)
    throw std::invalid_argument("pcrs, values, epoch and signature are all required");
  const size_t want = PcrBankSize(a.pcrs.bank) * static_cast<size_t>(__builtin_popcount(a.pcrs.mask));
  if (a.values.size() != want)
    throw std::invalid_argument("values holds " + std::to_string(a.values.size()) + " bytes; " +
                                a.pcrs.ToString() + " needs " + std::to_string(want));
  return a;
}

std::optional<Bytes> FromHex(std::string_view s) { return Unhex(s); }

// ---- The TPM side (Tpm members) ----

Bytes Tpm::EpochCounterName(uint32_t index) { return NvNameOf(EpochPublic(index, true)); }

void Tpm::DefineEpochCounter(uint32_t index) {
  {
    auto lock = Enter();
    Retry([&] {
      TSS2_SYS_CONTEXT* sys = Sys();
      TPM2B_AUTH none{};
      TPM2B_NV_PUBLIC info{};
      info.nvPublic = EpochPublic(index, false);
      FastSession& session = Fast();
      Check(Tss2_Sys_NV_DefineSpace_Prepare(sys, TPM2_RH_OWNER, &none, &info),
            "TPM2_NV_DefineSpace prepare");
      RunFast(session, TPM2_CC_NV_DefineSpace, HandleName(TPM2_RH_OWNER), owner_auth_.view(), false,
              "TPM2_NV_DefineSpace (boot epoch counter)");
      Check(Tss2_Sys_NV_DefineSpace_Complete(sys), "TPM2_NV_DefineSpace complete");
      return 0;
    });
  }  // the turn ends here: IncrementEpochCounter takes its own
  // A counter cannot be read (nor used by TPM2_PolicyNV) before its first
  // increment; that increment also gives it its name with TPMA_NV_WRITTEN.
  IncrementEpochCounter(index, false);
}

void Tpm::IncrementEpochCounter(uint32_t index, bool written) {
  auto lock = Enter();
  const Bytes names = Cat({HandleName(TPM2_RH_OWNER), NvNameOf(EpochPublic(index, written))});
  Retry([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    FastSession& session = Fast();
    Check(Tss2_Sys_NV_Increment_Prepare(sys, TPM2_RH_OWNER, index), "TPM2_NV_Increment prepare");
    RunFast(session, TPM2_CC_NV_Increment, names, owner_auth_.view(), false,
            "TPM2_NV_Increment (boot epoch counter)");
    Check(Tss2_Sys_NV_Increment_Complete(sys), "TPM2_NV_Increment complete");
    return 0;
  });
}

// In the module session with the index's empty auth: the response HMAC,
// keyed by the counter's name, proves the value is this counter's.
uint64_t Tpm::ReadEpochCounter(uint32_t index) {
  auto lock = Enter();
  const Bytes name = EpochCounterName(index);
  return Retry([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    FastSession& session = Fast();
    Check(Tss2_Sys_NV_Read_Prepare(sys, index, index, 8, 0), "TPM2_NV_Read prepare");
    RunFast(session, TPM2_CC_NV_Read, Cat({name, name}), {}, false,
            "TPM2_NV_Read (boot epoch counter)");
    TPM2B_MAX_NV_BUFFER data{};
    data.size = sizeof data.buffer;
    Check(Tss2_Sys_NV_Read_Complete(sys, &data), "TPM2_NV_Read complete");
    if (data.size != 8) throw TpmError("the boot epoch counter has the wrong size", TSS2_MU_RC_BAD_SIZE);
    return (uint64_t{DecodeBe32(ByteView(data.buffer, 4))} << 32) |
           DecodeBe32(ByteView(data.buffer + 4, 4));
  });
}

bool Tpm::UndefineEpochCounter(uint32_t index) {
  const auto info = ReadNvPublic(index);
  if (!info) return false;
  // Only an index with this module's epoch counter form is removed.
  if (info->name != NvNameOf(EpochPublic(index, true)) &&
      info->name != NvNameOf(EpochPublic(index, false)))
    throw TpmError("NV index 0x" + Hex(EncodeBe32(index)) + " is not a boot epoch counter",
                   TPM2_RC_NV_AUTHORIZATION);
  return UndefineNvByOwner(index);
}

Secret Tpm::UnsealAuthorized(const SealedBlob& blob, const BootAuthorization& auth,
                             const AuthorizerKey& key, uint32_t epoch_index) {
  const Bytes key_public = key.Public();
  const Bytes key_name = PublicName(key_public);
  const Bytes epoch_name = EpochCounterName(epoch_index);
  const Bytes approved = ApprovedPolicy(auth.pcrs, auth.values, epoch_name, auth.epoch);
  const auto signature = TpmSignature(key, auth.signature);
  if (!signature) throw TpmError("the authorization's signature is malformed", TPM2_RC_SIGNATURE);
  auto lock = Enter();
  return Retry([&] {
    Primary();
    TSS2_SYS_CONTEXT* sys = Sys();
    TPMT_TK_VERIFIED ticket{};
    {
      // The key goes in the owner hierarchy: a ticket from a key loaded in
      // the NULL hierarchy does not satisfy TPM2_PolicyAuthorize.
      MakeRoomForObject(false);
      TPM2B_PUBLIC pub{};
      size_t off = 0;
      Check(Tss2_MU_TPM2B_PUBLIC_Unmarshal(key_public.data(), key_public.size(), &off, &pub),
            "unmarshal the authorization key");
      TPM2_HANDLE handle = 0;
      TPM2B_NAME name{};
      name.size = sizeof name.name;
      Check(Tss2_Sys_LoadExternal(sys, nullptr, nullptr, &pub, TPM2_RH_OWNER, &handle, &name, nullptr),
            "TPM2_LoadExternal (boot authorization key)");
      TpmObject external(sys, handle, key_name);
      TPM2B_DIGEST digest{};
      SetBuffer(digest, AuthorizationHash(approved));
      TPMT_SIGNATURE sig{};
      off = 0;
      Check(Tss2_MU_TPMT_SIGNATURE_Unmarshal(signature->data(), signature->size(), &off, &sig),
            "unmarshal the signature");
      Check(Tss2_Sys_VerifySignature(sys, handle, nullptr, &digest, &sig, &ticket, nullptr),
            "TPM2_VerifySignature (boot authorization)");
    }
    // A salted policy session: it carries the unsealed key back encrypted.
    std::unique_ptr<FastSession> policy =
        FastSession::Start(sys, primary_handle_, primary_x_, primary_y_, TPM2_SE_POLICY);
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    // The PCRs must hold the authorized values now (TPM_RC_VALUE if not).
    TPM2B_DIGEST pcr_digest{};
    SetBuffer(pcr_digest, crypto::Sha256(auth.values));
    const TPML_PCR_SELECTION sel = ToTpmSelection(auth.pcrs);
    Check(Tss2_Sys_PolicyPCR(sys, policy->handle(), nullptr, &pcr_digest, &sel, nullptr),
          "TPM2_PolicyPCR (authorized boot state)");
    // The epoch counter must not have passed the authorization's epoch
    // (TPM_RC_POLICY if it has: the authorization was revoked).
    TSS2L_SYS_AUTH_COMMAND pw{};
    pw.count = 1;
    pw.auths[0].sessionHandle = TPM2_RS_PW;
    TPM2B_OPERAND operand{};
    SetBuffer(operand, Be64(auth.epoch));
    Check(Tss2_Sys_PolicyNV(sys, epoch_index, epoch_index, policy->handle(), &pw, &operand, 0,
                            TPM2_EO_UNSIGNED_LE, nullptr),
          "TPM2_PolicyNV (boot epoch)");
    TPM2B_DIGEST approved_digest{};
    SetBuffer(approved_digest, approved);
    TPM2B_NONCE ref{};
    SetBuffer(ref, View(kBootPolicyRef));
    TPM2B_NAME key_sign{};
    key_sign.size = static_cast<UINT16>(key_name.size());
    std::memcpy(key_sign.name, key_name.data(), key_name.size());
    Check(Tss2_Sys_PolicyAuthorize(sys, policy->handle(), nullptr, &approved_digest, &ref,
                                   &key_sign, &ticket, nullptr),
          "TPM2_PolicyAuthorize");
    return UnsealLoaded(*policy, std::move(object), {});
  });
}

}  // namespace tpmtoken::tpm
