// The TPM as tpmtoken uses it: the module's own system API context over a
// time-bounded transport (transport.h), and the seal/unseal, PIN-counter and
// key operations of DESIGN.md. Every command that carries a secret or whose
// answer decides something runs in the module's own salted session
// (fast_session.h), whose crypto lives in the module's private OpenSSL
// context, with the response HMAC verified (commands without authorization
// handles use it as an audit session). The salt key, the storage primary, is
// checked against the name pinned in the store before the first session
// starts. The storage primary, one salted HMAC session and recently used keys
// stay loaded between calls (a warm sign is one TPM command); on a TPM
// without a resource manager at most one key stays, so the three object
// slots of a bare simulator suffice. Everything is flushed when the Tpm is
// destroyed. Methods take the TPM in turn: threads in arrival order, and on a
// TPM without a resource manager processes through a registry file (coord.h).
#pragma once
#include <tss2/tss2_sys.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "crypto/kdf.h"
#include "tpm/coord.h"
#include "util/fifo_lock.h"
#include "util/bytes.h"
#include "util/config.h"

namespace tpmtoken::tpm {

struct TpmError : std::runtime_error {
  TpmError(const std::string& call, TSS2_RC rc, TPM2_CC command = 0, TPM2_HANDLE hierarchy = 0);
  TSS2_RC rc;
  std::string call;  // the command (and what it was for), or what failed
  // The command that failed, where the TPM's answer is the failure (0 for
  // the bus, marshalling, or a step the module checks itself).
  TPM2_CC command = 0;
  // The hierarchy whose authorization that command carried (TPM2_RH_OWNER,
  // TPM2_RH_ENDORSEMENT): a refusal there is the configuration's (a
  // password tpmtoken was not given); 0 when the module's own values
  // authorized it, or nothing did.
  TPM2_HANDLE hierarchy = 0;
  // The response code without the handle/session/parameter number bits.
  TSS2_RC base() const;
  // Whether the TPM refused the authorization (TPM_RC_BAD_AUTH or
  // TPM_RC_AUTH_FAIL) of hierarchy h.
  bool RefusedAuthOf(TPM2_HANDLE h) const;
};

// A key bound to PCRs (CKA_TPMTOKEN_PCR_POLICY) that the TPM refused because
// the boot state changed (TPM_RC_POLICY_FAIL on the key's own use): the one
// place that code means "this key may not be used now" rather than a failure.
struct KeyPolicyError : TpmError {
  using TpmError::TpmError;
};

// A sealed data object: marshalled TPM2B_PUBLIC and TPM2B_PRIVATE. Only the
// TPM that made it can load it, under the same storage primary.
struct SealedBlob {
  Bytes pub;
  Bytes priv;
  // A key bound to these PCRs (authPolicy PolicyPCR then PolicyAuthValue,
  // userWithAuth clear): each use runs that policy. Not part of the blobs:
  // the token keeps it as the key's CKA_TPMTOKEN_PCR_POLICY.
  PcrSelection pcrs = {};
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
  uint32_t transient_slots = 3;            // TPM2_PT_HR_TRANSIENT_MIN
};

class FastSession;
class Registry;
struct BootAuthorization;  // authorize.h
struct AuthorizerKey;
class Transport;
class SysContext;

// The storage key the TPM answered with is not the one the store was made
// with (Tpm::PinPrimary).
struct PrimaryMismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
  // The uses the TPM object carries (KeyTemplate): for an EC key, sign is
  // ECDSA and decrypt is ECDH (TPM2_ECDH_ZGen); the TPM refuses the other.
  // An RSA key always carries decrypt: its raw private operation (which
  // signing uses too) is TPM2_RSA_Decrypt with the NULL scheme. For AES, sign
  // is TPM2_EncryptDecrypt's encrypt direction and decrypt its decrypt one
  // (at least one). An HMAC key always signs (TPM2_HMAC); without decrypt
  // its scheme is HMAC with hmac_hash, the one hash TPM2_HMAC then takes.
  bool sign = true;
  bool decrypt = true;
  TPM2_ALG_ID hmac_hash = TPM2_ALG_NULL;
  // AES: the one mode the TPM object runs (TPM2_ALG_NULL: any, per call).
  // A decrypt-only key fixed to CBC runs only the inverse cipher; AesCrypt
  // runs its ECB decryptions through CBC.
  TPM2_ALG_ID aes_mode = TPM2_ALG_NULL;
  // Non-empty: the key is usable only while these PCRs hold their values of
  // now (RSA and EC keys; SealedBlob::pcrs).
  PcrSelection pcrs = {};
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
  // The uses the TPM object carries, as KeySpec's (an imported key gets the
  // same template as a generated one).
  bool sign = true;
  bool decrypt = true;
  TPM2_ALG_ID hmac_hash = TPM2_ALG_NULL;
  TPM2_ALG_ID aes_mode = TPM2_ALG_NULL;
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
  // primary. 0: the platform's TCG SRK at 0x81000001 when one is there and
  // fits the TCG SRK template (no owner authorization, no TPM2_CreatePrimary
  // at each start), otherwise the module's own, created under the owner
  // hierarchy.
  // timeout_ms bounds every exchange with the TPM (config tpm_timeout).
  static std::unique_ptr<Tpm> Open(const std::string& tcti, const std::string& owner_auth,
                                   uint32_t primary_handle = 0, int timeout_ms = 120000);
  ~Tpm();
  Tpm(const Tpm&) = delete;
  Tpm& operator=(const Tpm&) = delete;

  // Read at first use (with the lockout state, in one audited command).
  const TpmInfo& info();
  // Properties read earlier (the store keeps them under the store key, so
  // a cold start reads none): info() answers them without a command.
  void UseInfo(const TpmInfo& known);
  bool has_resource_manager() const { return has_rm_; }

  // The storage primary's name (nameAlg || H(public)), computed here from
  // the public area the TPM returned after checking it against the template;
  // no session is used and nothing secret is sent.
  Bytes PrimaryName();
  // The same, confirmed in a session salted to the TPM's EK, whose RSA EK
  // certificate (NV 0x01c00002) ca_file must verify (ek.cc). Throws
  // PrimaryMismatch or std::runtime_error naming what failed.
  Bytes PrimaryNameViaEk(const std::string& ca_file);
  // With an owner password and an ek_ca, TPM2_CreatePrimary's HMAC session
  // is salted to the certified EK (otherwise it is unsalted).
  void SetEkCa(const std::string& ca_file) { ek_ca_ = ca_file; }
  // From now on the storage primary must have this name (the store's pin):
  // any other is refused with PrimaryMismatch before a session is salted to it.
  // persistent: where the store says that key lives (kTcgSrk, or 0 for one
  // created by TPM2_CreatePrimary); nullopt for stores that did not record
  // it (then the SRK is tried first). A store made on the SRK is never
  // opened on a created primary, nor the reverse: the name decides.
  // point (x || y, from PrimaryPoint) with a persistent handle that is not
  // primary_handle from the configuration: the key's public point as the
  // store recorded it, so no TPM2_ReadPublic is sent. The salt goes to that
  // point, so only the pinned key can answer the session, and its name is
  // in every command's cpHash; if the first command in the session fails,
  // the key there is read and a different one refused (PrimaryMismatch).
  void PinPrimary(ByteView name, std::optional<uint32_t> persistent = std::nullopt,
                  ByteView point = {});
  Bytes PrimaryPoint();
  static constexpr uint32_t kTcgSrk = 0x81000001;  // TCG provisioning guidance
  // The persistent handle of the storage primary in use, 0 when the module
  // created it (loads it first).
  uint32_t PrimaryPersistentHandle();

  // Random bytes from the TPM, in the salted session with the response
  // encrypted (they are often key material), in a Secret that wipes them;
  // throws if the TPM keeps returning nothing.
  Secret GetRandom(size_t n);
  DaState ReadDaState();
  // Whether the owner hierarchy has an authorization value set
  // (TPMA_PERMANENT ownerAuthSet), read in the audit session (verified).
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
  // The counter is defined with AUTHWRITE and OWNERREAD, not OWNERWRITE: the
  // owner authorization cannot rewrite it (its first write uses the PIN's
  // nv value); reads go through the verified session.
  void DefinePinCounter(uint32_t index, const crypto::PinAuth& pin, uint32_t limit);
  void UndefinePinCounter(uint32_t index);  // missing index is not an error
  // seal: the role's seal, whose policy names the counter (so the counter's
  // name is computed, never taken from an unauthenticated answer).
  // A value this process read less than kPinCounterCacheAge ago is
  // answered without a TPM command (C_GetTokenInfo, which clients call
  // several times in a row); fresh forces a read. Any unseal, define or
  // undefine on the index drops its cached value, so the count after this
  // process's own failed login is always read anew; another process's (or
  // tool's) change shows within the cache age.
  PinCounter ReadPinCounter(uint32_t index, const SealedBlob& seal, bool fresh = false);
  // The name of a PIN counter as this module defines it (written), current
  // (AUTHWRITE) or from earlier versions (OWNERWRITE); exposed for tests.
  static Bytes PinCounterName(uint32_t index, bool legacy = false);
  // Which of the two a seal's policy is bound to; throws if neither.
  static Bytes PinCounterNameFor(uint32_t index, const SealedBlob& seal);
  // TPM2_PolicySecret(nv) then TPM2_PolicyAuthValue (exposed for tests).
  static Bytes PinPolicy(ByteView nv_name);
  // like: a seal bound to the same counter (a re-seal keeps the counter's
  // form, which may be an earlier version's); without it, the current form.
  SealedBlob SealForPin(ByteView data, uint32_t index, const crypto::PinAuth& pin,
                        const SealedBlob* like = nullptr);
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
  // from caller data: the value travels encrypted in the session. With no
  // value the TPM generates one of HmacGeneratedSize(hash) bytes that never
  // leaves it. hash: KeySpec::hmac_hash (TPM2_ALG_NULL: any hash per call).
  SealedBlob CreateHmacKey(ByteView value, ByteView auth, TPM2_ALG_ID hash = TPM2_ALG_NULL);
  static size_t HmacGeneratedSize(TPM2_ALG_ID hash);
  // AES in the TPM (TPM2_EncryptDecrypt2) over whole blocks (or any length
  // for CTR); iv is updated to the chaining value for the next call. Input
  // and output are encrypted in the session.
  Secret AesCrypt(const SealedBlob& key, ByteView auth, bool decrypt, TPM2_ALG_ID mode, Bytes* iv,
                  ByteView in);
  // The mode an AES key's object is fixed to (KeySpec::aes_mode), from its
  // public area; TPM2_ALG_NULL for keys made before or without one.
  static TPM2_ALG_ID AesModeOf(const SealedBlob& key);
  // Whether the key's public area lets TPM2_EncryptDecrypt run this way.
  static bool AesAllows(const SealedBlob& key, bool decrypt, TPM2_ALG_ID mode);
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
  // (Takes the turn: never call it from inside one; DropCached does the work.)
  void FlushCached();
  // Flushes the cached keys only (at logout: their auth values go with it).
  void FlushKeys();
  // Flushes one key from the cache if it is loaded (a destroyed object's).
  // Never throws: a TPM error is logged, the object is already gone.
  void FlushKey(const SealedBlob& key);

  // Key attestation (attest.cc, issue 12). The endorsement hierarchy's
  // authorization must be empty (the TCG default). Each call flushes the
  // cached keys first: the EK, the AK and a key must fit beside the primary.
  struct EkCertificate {
    uint32_t index = 0;
    bool ecc = false;
    Bytes der;
  };
  // The EK certificates in NV (TCG EK credential profile: RSA 2048 at
  // 0x01c00002, ECC P-256 at 0x01c0000a), read in TPM2_PT_NV_BUFFER_MAX
  // pieces; none when the TPM has none.
  std::vector<EkCertificate> ReadEkCertificates();
  // The EK (TCG default template L-1 RSA 2048 or L-2 ECC P-256) and the AK
  // (a restricted ECDSA P-256 signing primary in the endorsement hierarchy
  // with a fixed unique value: the same key every time), as marshalled
  // TPM2B_PUBLIC, read in the module's session (the answer is verified) and
  // checked against the template.
  Bytes EkPublic(bool ecc);
  Bytes AkPublic();
  // TPM2_ActivateCredential: the AK (its empty auth in the module session,
  // which encrypts the answer) and the EK (a PolicySecret(endorsement)
  // session). Throws TpmError (base() TPM2_RC_INTEGRITY or similar) when the
  // credential was not made for this AK under this EK.
  Secret ActivateCredential(bool ecc_ek, ByteView id_object, ByteView encrypted_secret);
  // TPM2_Certify of a token key by the AK; attest is the TPMS_ATTEST,
  // signature the marshalled TPMT_SIGNATURE.
  struct Certified {
    Bytes attest, signature, key_public;  // key_public: marshalled TPM2B_PUBLIC
  };
  Certified Certify(const SealedBlob& key, ByteView auth, ByteView qualifying_data);

 private:
  Tpm();
  // This process's turn at the TPM (coord.h): the thread's ticket, and on a
  // bare TPM the registry's lock, inside which this process's loaded handles
  // are known to be its own. Ending the turn publishes them.
  class Turn {
   public:
    explicit Turn(Tpm& tpm);
    Turn(Turn&& o) noexcept : tpm_(o.tpm_) { o.tpm_ = nullptr; }
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    ~Turn();

   private:
    Tpm* tpm_;
  };
  // Takes the turn and readies the bus: a connection that failed is
  // re-made (under a resource manager the handles it held are gone).
  Turn Enter();
  void CreatePrimary();
  // A session salted to the certified EK (ek.cc); throws naming what failed.
  std::unique_ptr<FastSession> EkSession(const std::string& ca_file);
  void PersistentPrimary(uint32_t handle);
  // The TCG SRK at kTcgSrk when it is there, matches the TCG template and
  // (for a pinned store) has the pinned name; false otherwise.
  bool TcgSrk();
  void Primary();  // loads and checks it once; primary_handle_ then holds it
  TSS2_SYS_CONTEXT* Sys();
  // A command without authorization handles in the module session used for
  // audit: the response is verified (and decrypted with decrypt_response).
  void RunAudited(TPM2_CC command, bool decrypt_response, const char* what);
  TpmObject Load(const SealedBlob& blob);  // under the primary
  SealedBlob CreateChild(const TPM2B_PUBLIC& tmpl, ByteView data, ByteView auth,
                         const char* what);
  // resend_when_busy false: FastSession::NoResendOfNextCommand for the
  // unseal (a seal whose failed authorization counts).
  Secret UnsealLoaded(FastSession& session, TpmObject object, ByteView auth,
                      bool resend_when_busy = true);
  struct CachedKey;
  CachedKey& LoadKey(const SealedBlob& key);  // through the key cache (auth goes in each HMAC)
  FastSession& Fast();  // the module's own salted HMAC session
  // Runs a prepared command in a session; on failure a failed module session
  // is dropped (a new one starts next time) and the TPM's code is thrown.
  void RunFast(FastSession& session, TPM2_CC command, ByteView names, ByteView auth,
               bool decrypt_response, const char* what, bool encrypt_command = false,
               bool audit = false);
  // The name of a permanent handle (the owner hierarchy): the handle itself.
  static Bytes HandleName(TPM2_HANDLE h) { return EncodeBe32(h); }
  // Evicts this process's cached objects so one more fits: a key (for_key)
  // or a temporary object such as a seal (handles.cc).
  void MakeRoomForObject(bool for_key);
  // Handle management (handles.cc). Evictions keep a saved context
  // (TPM2_ContextSave) so the object comes back with TPM2_ContextLoad, which
  // is cheaper than TPM2_Load (no unwrap) and needs no primary.
  void EvictKey(CachedKey& key);
  // The loaded key to evict (not the one in use unless in_use), or null.
  CachedKey* KeyToEvict(bool in_use);
  void EvictPrimary();
  bool RestorePrimary();  // from its saved context; false when there is none
  void SyncHandles();     // drops handles the registry no longer says are ours
  void PublishHandles();
  // After a failed command: frees room (object or session memory) or drops
  // handles that vanished; true when fn is worth running again.
  bool Recover(const TpmError& e, int round, bool* reloaded);
  bool Reclaim(bool sessions);
  bool ForgetVanished();
  void DropCached();  // FlushCached's work, inside a turn
  Bytes PcrPolicy(const PcrSelection& pcrs);  // from the PCRs' current values
  Bytes ReadPcrValues(const PcrSelection& pcrs);  // PcrValues without the lock
  // The fixed properties (info_), read in the audit session at first use.
  void ReadProperties();
  std::vector<TPMS_TAGGED_PROPERTY> Properties(UINT32 first);  // audited
  // A key's authPolicy bound to pcrs: PolicyPCR(current values), then
  // PolicyAuthValue, so its auth value is still needed.
  Bytes PcrKeyPolicy(const PcrSelection& pcrs);
  // A salted policy session that has run TPM2_PolicyPCR over pcrs' current
  // values (then TPM2_PolicyAuthValue when auth_value).
  std::unique_ptr<FastSession> StartPcrPolicy(const PcrSelection& pcrs, bool auth_value);
  // UnsealWithPin's policy session: bound to the store anchor when this
  // process read it (no asymmetric operation), salted otherwise (seal.cc).
  std::unique_ptr<FastSession> StartPinPolicy();
  // The session a key's command runs in, taken before the command is
  // prepared: the fast session, or for a key bound to PCRs a policy session
  // kept in *policy. RunKey runs the command there; a PCR policy failure is
  // thrown naming the PCRs.
  FastSession& KeySession(const SealedBlob& key, std::unique_ptr<FastSession>* policy);
  void RunKey(FastSession& session, const SealedBlob& key, TPM2_CC command, ByteView names,
              ByteView auth, bool decrypt_response, const char* what);
  std::vector<TPMS_TAGGED_PROPERTY> VarProperties();
  // TPM2_GetCapability in the audit session (the answer is the TPM's); the
  // caller holds the lock.
  TPMS_CAPABILITY_DATA AuditedCapability(TPM2_CAP cap, UINT32 property, UINT32 count);
  void LoadPrimary();  // Primary() without the start-up check
  // After a failure while primary_unverified_: reads the key at the handle
  // and throws PrimaryMismatch if it is not the pinned one.
  void VerifyPrimary();
  void StartupSimulator();
  TpmObject EndorsementPrimary(const TPM2B_PUBLIC& tmpl, Bytes* out_public, const char* what);
  template <typename Fn>
  auto Retry(Fn&& fn);

  FifoLock turn_;
  std::unique_ptr<Registry> registry_;  // bare TPM only
  size_t object_slots_ = 3;             // TPM2_PT_HR_TRANSIENT_MIN
  std::unique_ptr<TPMS_CONTEXT> primary_saved_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<SysContext> sys_;
  uint64_t generation_ = 0;
  Secret owner_auth_;
  uint32_t persistent_primary_ = 0;  // primary_handle from the configuration
  TpmInfo info_;
  bool info_read_ = false;
  bool simulator_ = false;  // swtpm or mssim: may need TPM2_Startup
  bool has_rm_ = false;
  bool primary_loaded_ = false;
  TpmObject primary_;  // the transient primary (empty when persistent)
  TPM2_HANDLE primary_handle_ = 0;
  Bytes primary_name_;
  Bytes pinned_name_;  // from the store; empty until pinned
  std::optional<uint32_t> pinned_handle_;  // where the store says it lives
  Bytes pinned_point_;                     // its public point, x || y
  bool primary_unverified_ = false;        // taken from pinned_point_, no answer yet
  struct CachedCounter {
    PinCounter value;
    std::chrono::steady_clock::time_point read_at;
  };
  std::map<uint32_t, CachedCounter> counters_;  // ReadPinCounter
  // The store anchor whose auth value this process proved in a verified
  // ReadAnchorCounter: the bind entity of PIN policy sessions (seal.cc).
  uint32_t bind_index_ = 0;
  Secret bind_auth_;
  std::string ek_ca_;
  Bytes primary_x_, primary_y_;  // the storage primary's public point
  std::unique_ptr<FastSession> fast_;
  std::vector<std::unique_ptr<CachedKey>> keys_;  // most recently used last
  uint64_t key_uses_ = 0;  // the cache's clock: switches between keys
  // Seals already unsealed, still loaded: flushed when an object needs the
  // slot, at the end of a turn that used a key, or with the rest (handles.cc).
  std::vector<TpmObject> spent_;
  bool flush_spent_ = false;  // this turn loaded a key

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
  // After a failed read: what the TPM holds at index, from answers the
  // module's session authenticates (response codes carry no HMAC, so an
  // error answer proves nothing): an audited GetCapability for presence, an
  // audited NV_ReadPublic for the name. Throws when that cannot be done.
  // (An index re-created with the same public area and another auth value
  // has the same name: that shows as kSameName.)
  enum class NvPresence { kAbsent, kSameName, kOtherName };
  NvPresence VerifyNvIndex(uint32_t index, ByteView name);
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

  // Authorized boot states (authorize.cc, issue 11). The selected PCRs'
  // values in ascending order, read in the audit session (seal.cc).
  Bytes PcrValues(const PcrSelection& pcrs);
  // Seals data that opens through the given policy digest alone (seal.cc).
  SealedBlob SealUnderPolicy(ByteView data, ByteView policy);
  // Unseals a seal made under AuthorizedPolicy(key's name) with one
  // authorization. Throws TpmError: base() TPM2_RC_SIGNATURE (not signed by
  // key), TPM2_RC_VALUE (the PCRs hold other values), TPM2_RC_POLICY (the
  // epoch counter passed the authorization's epoch: revoked).
  Secret UnsealAuthorized(const SealedBlob& blob, const BootAuthorization& auth,
                          const AuthorizerKey& key, uint32_t epoch_index);
  // The store's boot epoch counter (TPM_NT_COUNTER, OWNERWRITE, AUTHREAD
  // with an empty auth, NO_DA): defined and incremented once, so it is
  // written and readable; read in the module session (verified).
  void DefineEpochCounter(uint32_t index);
  void IncrementEpochCounter(uint32_t index, bool written = true);
  uint64_t ReadEpochCounter(uint32_t index);
  static Bytes EpochCounterName(uint32_t index);
  // Removes it with the owner authorization; false when it does not exist;
  // throws when the index is not a boot epoch counter.
  bool UndefineEpochCounter(uint32_t index);
};

struct Tpm::CachedKey {
  std::string id;  // the key's public and private blobs
  TpmObject object;  // handle 0 while evicted
  std::unique_ptr<TPMS_CONTEXT> saved;  // once evicted on a bare TPM
  uint64_t last_use = 0;  // key_uses_ at its last use
  uint64_t reuse = 0;     // uses between its last two (0: used once so far)
  // When it is expected next, from its last reuse distance: never for a key
  // used once so far, or one whose expected use has passed (the process
  // moved on to other keys). The key expected last leaves first.
  uint64_t NextUse(uint64_t now) const {
    return reuse && last_use + reuse >= now ? last_use + reuse : UINT64_MAX;
  }
};

}  // namespace tpmtoken::tpm
