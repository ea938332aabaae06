// The TPM as tpmtoken uses it: one ESAPI context over the TCTI loader and the
// seal/unseal, PIN-counter and key operations of DESIGN.md. Every command
// that uses an authorization session runs over the system API in the
// module's own salted session (fast_session.h), whose crypto lives in the
// module's private OpenSSL context; ESAPI is used only for commands without
// sessions. (ESAPI's own session salting calls OpenSSL's default context,
// which a host may have routed to a PKCS#11 engine: that breaks.) The
// storage primary, one salted HMAC session and recently used keys stay loaded
// between calls (a warm sign is one TPM command); on a TPM without a resource
// manager at most one key stays, so the three object slots of a bare
// simulator suffice. Everything is flushed when the Tpm is destroyed. Methods
// are serialized by an internal mutex.
#pragma once
#include <tss2/tss2_esys.h>
#include <tss2/tss2_sys.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "crypto/kdf.h"
#include "util/bytes.h"
#include "util/config.h"

namespace tpmtoken::tpm {

struct TpmError : std::runtime_error {
  TpmError(const std::string& call, TSS2_RC rc);
  TSS2_RC rc;
  // The response code without the handle/session/parameter number bits.
  TSS2_RC base() const;
};

// A sealed data object: marshalled TPM2B_PUBLIC and TPM2B_PRIVATE. Only the
// TPM that made it can load it, under the same storage primary.
struct SealedBlob {
  Bytes pub;
  Bytes priv;
};

struct PinCounter {
  uint32_t count = 0;
  uint32_t limit = 0;
  bool locked() const { return count >= limit; }
};

// The TPM's dictionary-attack protection (TPM2_PT_LOCKOUT_* and inLockout).
struct DaState {
  uint32_t failures = 0;
  uint32_t max_tries = 0;
  uint32_t recovery_seconds = 0;
  bool in_lockout = false;
};

struct TpmInfo {
  std::string manufacturer;  // TPM2_PT_MANUFACTURER, e.g. "IBM"
  std::string vendor;        // TPM2_PT_VENDOR_STRING_1..4
  uint8_t spec_major = 2, spec_minor = 0;  // from TPM2_PT_REVISION
  uint8_t fw_major = 0, fw_minor = 0;      // from TPM2_PT_FIRMWARE_VERSION_1
};

class Handle;
class FastSession;

// A transient object loaded over the system API; flushed on release.
class TpmObject {
 public:
  TpmObject() = default;
  TpmObject(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE handle, Bytes name)
      : sys_(sys), handle_(handle), name_(std::move(name)) {}
  TpmObject(TpmObject&& o) noexcept : sys_(o.sys_), handle_(o.handle_), name_(std::move(o.name_)) {
    o.handle_ = 0;
  }
  TpmObject& operator=(TpmObject&& o) noexcept;
  TpmObject(const TpmObject&) = delete;
  TpmObject& operator=(const TpmObject&) = delete;
  ~TpmObject() { Reset(); }
  void Reset();
  void Release() { handle_ = 0; }  // the TPM flushed it already
  TPM2_HANDLE handle() const { return handle_; }
  const Bytes& name() const { return name_; }

 private:
  TSS2_SYS_CONTEXT* sys_ = nullptr;
  TPM2_HANDLE handle_ = 0;
  Bytes name_;
};

// A key the TPM holds for a token object.
enum class KeyKind { kRsa, kEcc, kAes, kHmac };
struct KeySpec {
  KeyKind kind = KeyKind::kEcc;
  uint32_t rsa_bits = 2048;
  TPM2_ECC_CURVE curve = TPM2_ECC_NIST_P256;
  uint32_t aes_bits = 128;
};
struct KeyPublic {
  KeyKind kind = KeyKind::kEcc;
  Bytes modulus;                 // RSA, big-endian
  uint32_t exponent = 65537;     // RSA
  TPM2_ECC_CURVE curve = 0;      // ECC
  Bytes x, y;                    // ECC point, each padded to the field size
};
// A private key to import: RSA as (modulus, exponent, one prime), EC as
// (curve, point, scalar).
struct ImportedKey {
  KeyKind kind = KeyKind::kEcc;
  Bytes modulus;
  uint32_t exponent = 65537;
  TPM2_ECC_CURVE curve = 0;
  Bytes x, y;
  Secret secret;  // the prime (RSA) or the scalar (EC)
};
struct CreatedKey {
  SealedBlob blob;
  KeyPublic pub;
};

class Tpm {
 public:
  // Connects through the TCTI loader ("device:/dev/tpmrm0", "swtpm:port=…",
  // "tabrmd:…"). Throws TpmError naming the TCTI on failure.
  // primary_handle: a persistent ECC P-256 storage key to use as the storage
  // primary (0: create the module's own under the owner hierarchy).
  static std::unique_ptr<Tpm> Open(const std::string& tcti, const std::string& owner_auth,
                                   uint32_t primary_handle = 0);
  ~Tpm();
  Tpm(const Tpm&) = delete;
  Tpm& operator=(const Tpm&) = delete;

  const TpmInfo& info() const { return info_; }
  bool has_resource_manager() const { return has_rm_; }

  Bytes GetRandom(size_t n);
  DaState ReadDaState();
  // Whether the owner hierarchy has an authorization value set
  // (TPMA_PERMANENT ownerAuthSet).
  bool OwnerAuthSet();
  bool owner_auth_known() const { return !owner_auth_.empty(); }

  // Seals data that opens with no authorization (the store key). With a PCR
  // selection the seal's policy is TPM2_PolicyPCR over the values those PCRs
  // hold now: it opens only while they hold them. An unseal after they
  // changed throws TpmError with base() == TPM2_RC_POLICY_FAIL.
  SealedBlob SealOpen(ByteView data, const PcrSelection& pcrs = {});
  // Whether a seal is exempt from dictionary-attack lockout (store keys
  // sealed by earlier versions are not, and are re-sealed on open).
  static bool IsNoDa(const SealedBlob& blob);
  Secret UnsealOpen(const SealedBlob& blob, const PcrSelection& pcrs = {});

  // PIN-protected seals (DESIGN.md, token key). The seal's policy requires
  // PolicySecret on a PIN_FAIL NV index (whose auth is the PIN's nv value; the
  // TPM counts failures there, outside the dictionary-attack counter) and
  // PolicyAuthValue with the PIN's seal value.
  void DefinePinCounter(uint32_t index, const crypto::PinAuth& pin, uint32_t limit);
  void UndefinePinCounter(uint32_t index);  // missing index is not an error
  PinCounter ReadPinCounter(uint32_t index);
  SealedBlob SealForPin(ByteView data, uint32_t index, const crypto::PinAuth& pin);
  // nullopt when the PIN is wrong (the TPM has counted the failure).
  std::optional<Secret> UnsealWithPin(const SealedBlob& blob, uint32_t index,
                                      const crypto::PinAuth& pin);
  // The fallback where the TPM refuses PIN counters (DESIGN.md): a seal
  // whose auth value is the PIN's seal value, protected by the TPM's
  // dictionary-attack counter. nullopt when the PIN is wrong (counted there);
  // throws TpmError with base() TPM2_RC_LOCKOUT while the TPM is locked out.
  SealedBlob SealWithAuth(ByteView data, const crypto::PinAuth& pin);
  std::optional<Secret> UnsealWithAuth(const SealedBlob& blob, const crypto::PinAuth& pin);
  // A free NV handle at or above base (owner range), or throws.
  uint32_t FreeNvIndex(uint32_t base, uint32_t avoid = 0);

  // Keys (keys.cc). auth is the key's random authorization value.
  CreatedKey CreateKey(const KeySpec& spec, ByteView auth);
  bool SupportsKey(const KeySpec& spec);  // TPM2_TestParms
  bool HasAlgorithm(TPM2_ALG_ID alg);     // TPM2_GetCapability(TPM2_CAP_ALGS)
  // TPM2_Import under the storage primary (import.cc).
  CreatedKey ImportKey(const ImportedKey& key, ByteView auth);
  // An HMAC key with the given value (a keyed-hash object), made by the TPM
  // from caller data: the value travels encrypted in the session.
  SealedBlob CreateHmacKey(ByteView value, ByteView auth);
  // AES in the TPM (TPM2_EncryptDecrypt2) over whole blocks (or any length
  // for CTR); iv is updated to the chaining value for the next call. Input
  // and output are encrypted in the session.
  Secret AesCrypt(const SealedBlob& key, ByteView auth, bool decrypt, TPM2_ALG_ID mode, Bytes* iv,
                  ByteView in);
  // TPM2_ECDH_ZGen: the x-coordinate of d * peer (the shared secret Z),
  // padded to the curve's size; the response is encrypted in the session.
  Secret EcdhZ(const SealedBlob& key, ByteView auth, ByteView x, ByteView y);
  // HMAC with a keyed-hash key; any length of data.
  Bytes Hmac(const SealedBlob& key, ByteView auth, ByteView data, TPM2_ALG_ID hash);
  // ECDSA over digest (already truncated or padded to a hash length);
  // returns r || s, each padded to the curve's size.
  Bytes SignEcdsa(const SealedBlob& key, ByteView auth, ByteView digest, TPM2_ALG_ID hash);
  // The raw RSA private operation m^d mod n; the response is encrypted.
  Secret RsaPrivate(const SealedBlob& key, ByteView auth, ByteView input);
  // Flushes every cached key, the session and the primary.
  void FlushCached();
  // Flushes the cached keys only (at logout: their auth values go with it).
  void FlushKeys();

  ESYS_CONTEXT* ctx() { return ctx_; }

 private:
  Tpm() = default;
  void SetOwnerAuth();
  Handle CreatePrimary();
  Handle PersistentPrimary();
  const Handle& Primary();  // cached
  TSS2_SYS_CONTEXT* Sys();
  TpmObject Load(const SealedBlob& blob);  // under the primary
  SealedBlob CreateChild(const TPM2B_PUBLIC& tmpl, ByteView data, ByteView auth,
                         const char* what);
  Secret UnsealLoaded(FastSession& session, const TpmObject& object, ByteView auth);
  Bytes NvName(uint32_t index);
  struct CachedKey;
  CachedKey& LoadKey(const SealedBlob& key, ByteView auth);  // through the key cache
  FastSession& Fast();  // the module's own salted HMAC session
  // Runs a prepared command in a session; on failure a failed module session
  // is dropped (a new one starts next time) and the TPM's code is thrown.
  void RunFast(FastSession& session, TPM2_CC command, ByteView names, ByteView auth,
               bool decrypt_response, const char* what, bool encrypt_command = false);
  // The name of a permanent handle (the owner hierarchy): the handle itself.
  static Bytes HandleName(TPM2_HANDLE h) { return EncodeBe32(h); }
  // Evicts cached keys so one more object fits: a key (for_key) or a
  // temporary object such as a seal.
  void MakeRoomForObject(bool for_key);
  Bytes PinPolicy(ByteView nv_name);
  Bytes PcrPolicy(const PcrSelection& pcrs);  // from the PCRs' current values
  void ReadFixedProperties();
  std::vector<TPMS_TAGGED_PROPERTY> VarProperties();
  void RecoverTransientMemory();
  template <typename Fn>
  auto Retry(Fn&& fn);

  std::mutex mu_;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* ctx_ = nullptr;
  Secret owner_auth_;
  uint32_t persistent_primary_ = 0;
  TpmInfo info_;
  bool has_rm_ = false;
  std::unique_ptr<Handle> primary_;
  TPM2_HANDLE primary_handle_ = 0;
  Bytes primary_name_;
  Bytes primary_x_, primary_y_;  // the storage primary's public point
  std::unique_ptr<FastSession> fast_;
  std::vector<std::unique_ptr<CachedKey>> keys_;  // most recently used last

 public:
  // Freshness anchors (nv_anchor.cc): a TPM_NT_COUNTER NV index per store,
  // AUTHWRITE|AUTHREAD|NO_DA with a random auth value, its authPolicy set to
  // a public tag naming the store (no policy read or write: never usable).
  // Reads and increments run in the module's salted session with the
  // index's auth, so the response HMAC proves the value came from the TPM.
  struct NvInfo {
    uint32_t attributes = 0;
    Bytes auth_policy;
    uint16_t data_size = 0;
    Bytes name;  // computed from the public area, not taken from the answer
  };
  // Defines the counter, not yet written (a counter cannot be read before
  // its first increment, so an unwritten one was never bound to a store).
  void DefineAnchorCounter(uint32_t index, ByteView auth, ByteView tag);
  static Bytes AnchorCounterName(uint32_t index, ByteView tag, bool written);
  uint64_t ReadAnchorCounter(uint32_t index, ByteView name, ByteView auth);
  void IncrementAnchorCounter(uint32_t index, ByteView name, ByteView auth);
  // TPM2_NV_ReadPublic (unauthenticated: used to find, never to trust);
  // nullopt when the index does not exist.
  std::optional<NvInfo> ReadNvPublic(uint32_t index);
  // TPM2_NV_UndefineSpace with the owner authorization; false when the index
  // did not exist.
  bool UndefineNvByOwner(uint32_t index);
  // Defined NV indices in [from, to).
  std::vector<uint32_t> NvIndices(uint32_t from, uint32_t to);
  // Proves the owner authorization without changing anything
  // (TPM2_ClockRateAdjust(owner, no change) in the salted session); throws
  // TpmError (TPM2_RC_BAD_AUTH) when owner_auth is wrong.
  void ProveOwner();
};

// Owns one ESYS_TR: transient objects and sessions are flushed, other
// handles (NV, hierarchies) are closed in ESAPI only.
class Handle {
 public:
  enum class Kind { kFlush, kClose };
  Handle() = default;
  Handle(ESYS_CONTEXT* ctx, ESYS_TR tr, Kind kind) : ctx_(ctx), tr_(tr), kind_(kind) {}
  Handle(Handle&& o) noexcept : ctx_(o.ctx_), tr_(o.tr_), kind_(o.kind_) { o.tr_ = ESYS_TR_NONE; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { Reset(); }
  void Reset();
  // Forget the handle without releasing it (the TPM command consumed it).
  void Release() { tr_ = ESYS_TR_NONE; }
  ESYS_TR get() const { return tr_; }

 private:
  ESYS_CONTEXT* ctx_ = nullptr;
  ESYS_TR tr_ = ESYS_TR_NONE;
  Kind kind_ = Kind::kFlush;
};

struct Tpm::CachedKey {
  std::string id;  // the key's public blob
  TpmObject object;
};

}  // namespace tpmtoken::tpm
