// tpmtoken boot status | bind | authorize | install | revoke: authorized
// boot states (issue 11 item 3; src/token/boot.cc holds the logic).
#include <openssl/core_names.h>
#include <openssl/x509.h>

#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "commands.h"
#include "crypto/pubkey.h"
#include "tpm/authorize.h"

namespace tpmtoken::tool {
namespace {

PcrSelection ParsePcrs(const std::string& text) {
  try {
    PcrSelection p = PcrSelection::Parse(text);
    if (p.empty()) throw std::invalid_argument("no PCRs selected");
    return p;
  } catch (const std::invalid_argument& e) {
    throw ToolError("--pcrs '" + text + "': " + e.what() + " (e.g. sha256:7,16)", kUsage);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ToolError("cannot read " + path, kUsage);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

tpm::BootAuthorization ReadAuthorization(const std::string& path) {
  try {
    return tpm::BootAuthorization::Parse(ReadFile(path));
  } catch (const std::invalid_argument& e) {
    throw ToolError(path + ": " + e.what(), kUsage);
  }
}

// Expected PCR values: "N: HEX" lines (tpm2_pcrread's output, with or
// without 0x and the bank's header line), one per selected PCR.
Bytes ValuesFromFile(const std::string& path, const PcrSelection& pcrs) {
  std::map<unsigned, Bytes> by_pcr;
  std::istringstream in(ReadFile(path));
  const std::regex line_re(R"(^\s*(\d+)\s*[:=]\s*(0x)?([0-9A-Fa-f]+)\s*$)");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    const auto v = tpm::FromHex(m[3].str());
    if (!v || v->size() != tpm::PcrBankSize(pcrs.bank))
      throw ToolError(path + ":" + std::to_string(n) + ": not a " + pcrs.bank + " value", kUsage);
    by_pcr[static_cast<unsigned>(std::stoul(m[1].str()))] = *v;
  }
  Bytes out;
  for (unsigned i = 0; i < 24; ++i) {
    if (!(pcrs.mask & (1u << i))) continue;
    auto it = by_pcr.find(i);
    if (it == by_pcr.end())
      throw ToolError(path + ": no value for PCR " + std::to_string(i) + " (lines 'N: HEX')", kUsage);
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

// The anchor's public key, read through the token: a trusted authority
// certificate (CKA_TRUSTED, CKA_CERTIFICATE_CATEGORY 2) with this label.
tpm::AuthorizerKey AnchorKey(Context& ctx, const std::string& token, const std::string& name) {
  const CK_SESSION_HANDLE s = ctx.Session(token);
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_BBOOL yes = CK_TRUE;
  CK_ULONG authority = 2;
  const auto found = ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls},
                                  {CKA_LABEL, const_cast<char*>(name.data()), name.size()},
                                  {CKA_TRUSTED, &yes, sizeof yes},
                                  {CKA_CERTIFICATE_CATEGORY, &authority, sizeof authority}});
  if (found.size() != 1)
    throw ToolError(found.empty() ? "no trust anchor labelled '" + name +
                                        "' (tpmtoken anchor add --label " + name + " CA.pem)"
                                  : "several trust anchors are labelled '" + name + "'",
                    kNotFound);
  const Bytes der = ctx.Attr(s, found[0], CKA_VALUE);
  const unsigned char* p = der.data();
  std::unique_ptr<X509, crypto::Deleter<X509_free>> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  EVP_PKEY* pub = cert ? X509_get0_pubkey(cert.get()) : nullptr;
  if (!pub) throw ToolError("the anchor '" + name + "' holds no usable certificate", kFailure);
  tpm::AuthorizerKey key;
  if (EVP_PKEY_is_a(pub, "RSA")) {
    BIGNUM *n = nullptr, *e = nullptr;
    EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &e);
    key.rsa = true;
    key.n.resize(static_cast<size_t>(BN_num_bytes(n)));
    BN_bn2bin(n, key.n.data());
    key.e = static_cast<uint32_t>(BN_get_word(e));
    BN_free(n);
    BN_free(e);
    return key;
  }
  char group[64] = {};
  uint8_t point[1 + 2 * 66] = {};
  size_t len = 0;
  if (!EVP_PKEY_is_a(pub, "EC") ||
      !EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, nullptr) ||
      !EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len))
    throw ToolError("the anchor '" + name + "' has neither an RSA nor an EC key", kUsage);
  const std::string g = group;
  key.curve = g == "prime256v1" || g == "P-256" ? TPM2_ECC_NIST_P256
              : g == "secp384r1" || g == "P-384" ? TPM2_ECC_NIST_P384 : 0;
  const size_t half = (len - 1) / 2;
  if (key.curve == 0 || point[0] != 0x04)
    throw ToolError("the anchor '" + name + "' uses curve " + g + "; boot authorizations take "
                    "P-256, P-384 or RSA", kUsage);
  key.x.assign(point + 1, point + 1 + half);
  key.y.assign(point + 1 + half, point + len);
  return key;
}

// Runs fn; the core's refusals get the boot commands' exit codes.
template <typename Fn>
int Guard(Fn&& fn) {
  try {
    return fn();
  } catch (const Module::BootRefused& e) {
    throw ToolError(e.what(), e.why == Module::BootRefused::kNotSigned ? kBootNotSigned
                              : e.why == Module::BootRefused::kRevoked ? kBootRevoked
                                                                       : kBootNotApproved);
  } catch (const std::invalid_argument& e) {
    throw ToolError(e.what(), kUsage);
  }
}

}  // namespace

int BootStatus(const Options& o) {
  Context ctx;
  const Module::BootState s = ctx.module().GetBootState();
  const PcrSelection& pcrs = ctx.module().store_key_pcrs();
  const std::string mode = !s.authorizer.empty() ? "authorized" : pcrs.empty() ? "none" : "pcrs";
  if (o.json) {
    std::cout << "{\"mode\":" << JsonString(mode) << ",\"authorizer\":" << JsonString(s.authorizer)
              << ",\"pcr_policy\":" << JsonString(pcrs.ToString())
              << ",\"key_name\":" << JsonString(Hex(s.key_name))
              << ",\"epoch_index\":" << JsonString(s.epoch_index ? Hex(EncodeBe32(s.epoch_index)) : "")
              << ",\"epoch_name\":" << JsonString(Hex(s.epoch_name)) << ",\"epoch\":" << s.epoch
              << ",\"policy_ref\":" << JsonString(tpm::kBootPolicyRef)
              << ",\"directory\":" << JsonString(s.directory) << ",\"opened_with\":";
    if (s.opened_with)
      std::cout << "{\"pcrs\":" << JsonString(s.opened_with->pcrs.ToString())
                << ",\"epoch\":" << s.opened_with->epoch << "}";
    else
      std::cout << "null";
    std::cout << "}\n";
    return kOk;
  }
  if (mode == "authorized") {
    std::cout << "store key: sealed to boot states authorized by " << s.authorizer
              << "\nauthorization key name: " << Hex(s.key_name) << "\n";
    if (s.opened_with)
      std::cout << "this boot: authorized for PCRs " << s.opened_with->pcrs.ToString()
                << ", epoch " << s.opened_with->epoch << "\n";
  } else {
    std::cout << "store key: " << (pcrs.empty() ? "not bound to PCRs" : "bound to PCRs " + pcrs.ToString())
              << " (not authorized boot states)\n";
  }
  if (s.epoch_index)
    std::cout << "boot epoch: " << s.epoch << " (NV index 0x" << Hex(EncodeBe32(s.epoch_index))
              << ", name " << Hex(s.epoch_name) << ")\n";
  std::cout << "policyRef: " << tpm::kBootPolicyRef << "\nauthorizations: " << s.directory << "\n";
  return kOk;
}

int BootBind(const Options& o) {
  return Guard([&] {
    Context ctx;
    const CK_SLOT_ID slot = ctx.SlotOf(o.label);
    std::optional<tpm::AuthorizerKey> key;
    if (o.authorizer.rfind("anchor:", 0) == 0)
      key = AnchorKey(ctx, o.label, o.authorizer.substr(7));
    else if (o.authorizer != "so" && o.authorizer != "none")
      throw ToolError("--authorizer is so, anchor:NAME or none", kUsage);
    const PcrSelection pcrs = o.pcrs.empty() ? PcrSelection{} : ParsePcrs(o.pcrs);
    std::optional<tpm::BootAuthorization> given;
    if (!o.file.empty()) given = ReadAuthorization(o.file);
    const Secret pin = ReadPin(o.so_pin);
    Check(ctx.module().BindBoot(slot, pin.view(), o.authorizer, key, pcrs, given),
          "boot bind (SO PIN)");
    std::cout << (o.authorizer == "none"
                      ? "the store key is no longer bound to authorized boot states\n"
                      : "the store key is now sealed to boot states authorized by " + o.authorizer + "\n");
    return kOk;
  });
}

int BootAuthorize(const Options& o) {
  return Guard([&] {
    if (o.current == !o.values.empty()) throw ToolError("give --values FILE or --current", kUsage);
    const PcrSelection pcrs = ParsePcrs(o.pcrs);
    std::optional<uint64_t> epoch;
    if (!o.epoch.empty()) {
      try {
        size_t used = 0;
        epoch = std::stoull(o.epoch, &used);
        if (used != o.epoch.size()) throw std::invalid_argument(o.epoch);
      } catch (const std::exception&) {
        throw ToolError("--epoch '" + o.epoch + "' is not a number", kUsage);
      }
    }
    Context ctx;
    const CK_SLOT_ID slot = ctx.SlotOf(o.label);
    const Bytes values = o.current ? ctx.module().tpm().PcrValues(pcrs) : ValuesFromFile(o.values, pcrs);
    const Secret pin = ReadPin(o.so_pin);
    tpm::BootAuthorization a;
    Check(ctx.module().AuthorizeBoot(slot, pin.view(), pcrs, values, epoch, &a),
          "boot authorize (SO PIN)");
    std::ofstream out(o.out, std::ios::trunc);
    out << a.Encode();
    out.close();
    if (!out) throw ToolError("cannot write " + o.out, kFailure);
    std::cout << "authorized PCRs " << pcrs.ToString() << " (epoch " << a.epoch << ") in " << o.out << "\n";
    return kOk;
  });
}

int BootInstall(const Options& o) {
  return Guard([&] {
    const tpm::BootAuthorization a = ReadAuthorization(o.file);
    Context ctx;
    std::cout << "installed " << ctx.module().InstallBootAuthorization(a) << "\n";
    return kOk;
  });
}

int BootRevoke(const Options& o) {
  return Guard([&] {
    Context ctx;
    const CK_SLOT_ID slot = ctx.SlotOf(o.label);
    const Secret pin = ReadPin(o.so_pin);
    uint64_t epoch = 0;
    Check(ctx.module().RevokeBoot(slot, pin.view(), &epoch), "boot revoke (SO PIN)");
    std::cout << "boot epoch is now " << epoch << ": authorizations with a lower epoch are revoked\n";
    return kOk;
  });
}

}  // namespace tpmtoken::tool
