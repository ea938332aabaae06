// The PKCS#11 core: slots, tokens, sessions, login state and objects of one
// process. Every method is a C_* function minus the C ABI: the caller has
// checked pointers and holds the module lock; methods return the spec's CKR
// and throw only for TPM, store or memory failures, which the ABI maps.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "crypto/pubkey.h"
#include "mech/aes.h"
#include "mech/cipher.h"
#include "mech/digest.h"
#include "mech/hmac.h"
#include "mech/sign.h"
#include "mech/table.h"
#include "store/store.h"
#include "token/object.h"
#include "token/operation.h"
#include "token/record.h"
#include "tpm/authorize.h"
#include "tpm/tpm.h"
#include "util/config.h"

namespace tpmtoken {

inline constexpr CK_USER_TYPE kNobody = ~CK_USER_TYPE{0};
inline constexpr CK_ULONG kMinPin = 4;
inline constexpr CK_ULONG kMaxPin = 128;
// Each anchored store allocates its NV indices (PIN counters, the boot epoch
// counter) from its own 128 (slot = its anchor's slot, unique on the TPM), so
// an intent left by a crash can only name this store's index.
inline constexpr uint32_t kPinPart = 128;
// The store's meta key that holds the free slot's ID.
inline constexpr const char* kFreeSlotKey = "free_slot";

struct Token {
  int64_t db_id = 0;
  CK_SLOT_ID slot_id = 0;
  TokenRecord rec;
  CK_USER_TYPE login = kNobody;
  Secret tk;  // the token key while someone is logged in

  // Token objects decrypted so far, by row: a search decrypts only the rows
  // its index tags select (object_index.cc), and they stay cached.
  std::map<int64_t, std::shared_ptr<Object>> objects;
  std::map<int64_t, CK_OBJECT_HANDLE> handles;         // row -> handle, stable in the process
  // Handles given out whose objects are not cached (trimmed, logged out,
  // forgotten): row by handle, so Resolve reads the row again on use.
  std::unordered_map<CK_OBJECT_HANDLE, int64_t> uncached;
  std::set<int64_t> unreadable;                        // rows that failed authentication
  int64_t seen_version = -1;
  // Key uses since the last flush, by row (key_use.cc): counted in memory,
  // written at logout, last session close and C_Finalize.
  std::map<int64_t, store::Store::KeyUse> pending_uses;

  // The store's index keys (store/index.cc) of SK and, while the user is
  // logged in, of TK; derived and keyed on first use.
  std::unique_ptr<crypto::HmacKey> index_key_public, index_key_private;
  // Session objects of this token, and by (attribute, value) of their
  // CKA_LABEL, CKA_ID and CKA_CLASS, kept as they are created, changed and
  // destroyed.
  std::set<CK_OBJECT_HANDLE> session_objects;
  std::unordered_map<std::string, std::set<CK_OBJECT_HANDLE>> session_index;
};

struct FindState {
  bool active = false;
  std::vector<CK_OBJECT_HANDLE> results;
  size_t next = 0;
};

// A signature or verification in progress and the key it uses.
struct SignState {
  std::unique_ptr<mech::SignatureOp> op;  // RSA and ECDSA
  std::unique_ptr<mech::HmacOp> hmac;     // or HMAC with a secret key
  std::shared_ptr<Object> key;
  std::optional<crypto::PublicKey> public_key;  // verification only
  bool needs_context_login = false;  // CKA_ALWAYS_AUTHENTICATE, not yet given
};

// An encryption or decryption in progress; a decryption keeps its result
// after a length query or a short buffer, so the retry costs no TPM command.
struct CipherState {
  std::unique_ptr<mech::RsaCipherOp> op;  // RSA
  std::unique_ptr<mech::AesOp> aes;       // or AES with a secret key
  std::shared_ptr<Object> key;
  std::optional<crypto::PublicKey> public_key;  // encryption only
  std::optional<Secret> plain;
  bool needs_context_login = false;  // CKA_ALWAYS_AUTHENTICATE, not yet given
};

struct Session {
  CK_SESSION_HANDLE handle = 0;
  Token* token = nullptr;
  bool rw = false;
  FindState find;
  // One slot per operation family: the rules of operation.h.
  OperationSlot<mech::DigestOp> digest;
  OperationSlot<SignState> sign;
  OperationSlot<SignState> verify;
  OperationSlot<CipherState> encrypt;
  OperationSlot<CipherState> decrypt;
};

class Module {
 public:
  // Loads the configuration, opens the store and the TPM, unseals the store
  // key and checks the store against its anchor in the TPM. Throws with a
  // message that names the cause and the fix. kRecover (the tool's
  // accept-restore and store delete) opens a store the anchor refuses and
  // keeps the refusal in anchor_problem().
  enum class OpenMode { kNormal, kRecover };
  static std::unique_ptr<Module> Create(OpenMode mode = OpenMode::kNormal);

  CK_RV GetSlotList(bool token_present, CK_SLOT_ID* list, CK_ULONG* count);
  CK_RV GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO* info);
  CK_RV GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO* info);
  CK_RV InitToken(CK_SLOT_ID slot, ByteView so_pin, ByteView label);

  CK_RV OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE* out);
  CK_RV CloseSession(CK_SESSION_HANDLE h);
  CK_RV CloseAllSessions(CK_SLOT_ID slot);
  CK_RV GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO* info);

  CK_RV Login(CK_SESSION_HANDLE h, CK_USER_TYPE who, ByteView pin);
  CK_RV Logout(CK_SESSION_HANDLE h);
  CK_RV InitPIN(CK_SESSION_HANDLE h, ByteView pin);
  CK_RV SetPIN(CK_SESSION_HANDLE h, ByteView old_pin, ByteView new_pin);

  CK_RV CreateObject(CK_SESSION_HANDLE h, const CK_ATTRIBUTE* tmpl, CK_ULONG n,
                     CK_OBJECT_HANDLE* out);
  CK_RV CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE* tmpl,
                   CK_ULONG n, CK_OBJECT_HANDLE* out);
  CK_RV DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj);
  CK_RV GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG* size);
  CK_RV GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE* tmpl,
                          CK_ULONG n);
  CK_RV SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE* tmpl,
                          CK_ULONG n);
  CK_RV FindObjectsInit(CK_SESSION_HANDLE h, const CK_ATTRIBUTE* tmpl, CK_ULONG n);
  CK_RV FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE* out, CK_ULONG max, CK_ULONG* count);
  CK_RV FindObjectsFinal(CK_SESSION_HANDLE h);

  CK_RV GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE* list, CK_ULONG* count);
  CK_RV GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO* info);
  CK_RV DigestInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech);
  CK_RV Digest(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV DigestUpdate(CK_SESSION_HANDLE h, ByteView data);
  // Digests the value of a secret key the module holds (2.40 section 5.10).
  CK_RV DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key);
  CK_RV DigestFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV GetOperationState(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV SetOperationState(CK_SESSION_HANDLE h, ByteView state);
  CK_RV GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG n);

  // Keys (keys.cc).
  CK_RV GenerateKeyPair(CK_SESSION_HANDLE h, const CK_MECHANISM* mech,
                        const CK_ATTRIBUTE* pub_tmpl, CK_ULONG pub_n,
                        const CK_ATTRIBUTE* priv_tmpl, CK_ULONG priv_n, CK_OBJECT_HANDLE* pub,
                        CK_OBJECT_HANDLE* priv);
  CK_RV GenerateKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, const CK_ATTRIBUTE* tmpl,
                    CK_ULONG n, CK_OBJECT_HANDLE* out);
  CK_RV DeriveKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE base,
                  const CK_ATTRIBUTE* tmpl, CK_ULONG n, CK_OBJECT_HANDLE* out);
  CK_RV WrapKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE wrapping,
                CK_OBJECT_HANDLE key, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV UnwrapKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE unwrapping,
                  ByteView wrapped, const CK_ATTRIBUTE* tmpl, CK_ULONG n, CK_OBJECT_HANDLE* out);
  CK_RV SignInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key);
  CK_RV Sign(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV SignUpdate(CK_SESSION_HANDLE h, ByteView data);
  CK_RV SignFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV VerifyInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key);
  CK_RV Verify(CK_SESSION_HANDLE h, ByteView data, ByteView signature);
  CK_RV VerifyUpdate(CK_SESSION_HANDLE h, ByteView data);
  CK_RV VerifyFinal(CK_SESSION_HANDLE h, ByteView signature);

  // RSA encryption in software and decryption in the TPM (cipher.cc).
  CK_RV EncryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key);
  CK_RV Encrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV EncryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV DecryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key);
  CK_RV Decrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV DecryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV SeedRandom(CK_SESSION_HANDLE h);

  // Whether h names an open session of this process.
  bool HasSession(CK_SESSION_HANDLE h) { return FindSession(h) != nullptr; }
  // 3.0 C_SessionCancel for the operations this module runs.
  CK_RV CancelOperations(CK_SESSION_HANDLE h, CK_FLAGS flags);

  // Admin operations beyond PKCS#11 (the tpmtoken tool), in the core so the
  // tool holds no token logic of its own.
  // Removes a token: its objects, record and PIN counters; the SO PIN must
  // open it. CKR_SESSION_EXISTS while this process has sessions on it.
  CK_RV DeleteToken(CK_SLOT_ID slot, ByteView so_pin);
  // The way out of a locked SO PIN (issue 7 item 3): with the TPM owner
  // authorization (owner_auth, checked by the TPM first), destroys the token,
  // its seals and its PIN counters. Nothing is unlocked.
  CK_RV DeleteTokenAsOwner(CK_SLOT_ID slot);
  // The warning of DESIGN.md (Trust boundary) when the owner authorization
  // is empty and the store key is bound to no PCRs; "" otherwise.
  // recent: the owner's state as a process read it within a day (the store
  // keeps it), as C_Initialize's warning uses it; status reads it afresh.
  std::string OwnerExposure(bool recent = false);
  bool OwnerAuthSet(bool recent);
  // Runs fn in one store transaction: all of its changes land or none do.
  CK_RV Atomically(CK_SESSION_HANDLE h, const std::function<CK_RV()>& fn);
  struct TokenSummary {
    CK_SLOT_ID slot;
    std::string serial, label;
    size_t public_objects, private_objects;
    // A role's PIN failures go to the TPM's dictionary-attack counter
    // because the TPM refused PIN counters (DESIGN.md fallback).
    bool da_fallback;
  };
  std::vector<TokenSummary> Tokens();
  // The TPM key behind a private key object this session can use (the
  // tool's `attest respond` certifies it); nullptr when h names none.
  std::shared_ptr<const KeyMaterial> TpmKeyOf(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key);

  // Freshness (freshness.cc). Why the anchor refused this store ("" when
  // it did not); only a kRecover module opens such a store.
  const std::string& anchor_problem() const { return anchor_problem_; }
  // Binds the store, as it is, to the TPM's counter: an administrator who
  // restored a backup on purpose. Needs every token's SO PIN (so_pin opens
  // each) or, with owner, the TPM owner authorization (the counter is then
  // defined anew). Audited.
  CK_RV AcceptRestore(ByteView so_pin, bool owner);
  // Removes the store at the configured path and frees its anchor and its
  // tokens' PIN counters (the owner authorization undefines them), also
  // when the store file is gone or empty. Returns what it did.
  static std::string DeleteStore();
  struct AnchorInfo {
    uint32_t nv_index = 0;
    uint64_t store_value = 0, tpm_value = 0;
  };
  std::optional<AnchorInfo> anchor_info();
  // Appends an audit entry in its own transaction (the tool's events that no
  // core change records, e.g. a rotation's start).
  void AuditEvent(const std::string& event);
  void AuditLogin(const Token& t, bool so, CK_RV rv);
  // Checks the audit chain against the anchor's head: "" or the first bad
  // entry.
  std::string VerifyAudit();

  // For tests and the admin tool.
  store::Store& store() { return *store_; }
  tpm::Tpm& tpm() { return *tpm_; }
  const Config& config() const { return cfg_; }
  // The PCRs the store key is sealed to (empty: not bound).
  const PcrSelection& store_key_pcrs() const { return sk_pcrs_; }

  // Authorized boot states (boot.cc, issue 11 item 3).
  // An authorization refused for a reason the tool reports with its own exit code.
  struct BootRefused : std::runtime_error {
    enum Why { kNotSigned, kRevoked, kNotApproved } why;
    BootRefused(Why w, const std::string& what) : std::runtime_error(what), why(w) {}
  };
  struct BootState {
    std::string authorizer;  // "" (exact PCRs or none), "so" or "anchor:NAME"
    Bytes key_name;          // the authorization key's TPM name
    uint32_t epoch_index = 0;  // 0: no epoch counter yet
    uint64_t epoch = 0;        // the counter's value
    Bytes epoch_name;
    std::string directory;     // where authorizations are installed
    std::optional<tpm::BootAuthorization> opened_with;  // this start's
  };
  BootState GetBootState();
  // Re-seals the store key (only an open store can) under PolicyAuthorize by
  // authorizer "so" (the SO's signing key in the TPM, made on first use; an
  // authorization for the current values of pcrs is made and installed) or
  // "anchor:NAME" (key: the anchor's public key; an installed authorization
  // (or given) must open the new seal), or "none" (back to pcr_policy). The new seal is
  // tried before anything is committed. Throws naming the cause.
  CK_RV BindBoot(CK_SLOT_ID slot, ByteView so_pin, const std::string& authorizer,
                 const std::optional<tpm::AuthorizerKey>& key, const PcrSelection& pcrs,
                 const std::optional<tpm::BootAuthorization>& given = std::nullopt);
  // An authorization by the SO's key for pcrs holding values (the epoch
  // defaults to the counter's value).
  CK_RV AuthorizeBoot(CK_SLOT_ID slot, ByteView so_pin, const PcrSelection& pcrs, ByteView values,
                      std::optional<uint64_t> epoch, tpm::BootAuthorization* out);
  // Checks the signature (TPM2_VerifySignature) and the epoch, then copies it
  // into the directory; returns the file's path.
  std::string InstallBootAuthorization(const tpm::BootAuthorization& auth);
  // Increments the epoch counter: every authorization below the new value
  // is refused by the TPM from now on. The current boot state must stay
  // authorized (the SO's key makes one; an anchor's must be installed).
  CK_RV RevokeBoot(CK_SLOT_ID slot, ByteView so_pin, uint64_t* new_epoch);

 private:
  Module() = default;
  void UnsealStoreKey();
  // Freshness (freshness.cc).
  struct StoreFile {
    enum State { kMissing, kEmpty, kPresent } state = kMissing;
    bool read_only = false;  // present, but this process cannot write it
  };
  static StoreFile InspectStoreFile(const std::string& path);
  // The refusal when the store is missing or empty but this TPM anchors a
  // store at its path ("" when it does not).
  std::string OrphanAnchorRefusal(const StoreFile& file);
  void CheckAnchor(OpenMode mode);
  std::string TokenMacsProblem(const store::AnchorRecord& rec);
  void RefuseAnchor(OpenMode mode, const std::string& problem);
  void CreateAnchor(OpenMode mode);
  void BindAnchor();
  std::string TokenName(int64_t row);
  // NV intents (nv_intents.cc, issue 7 item 4): an index this store may own
  // is named in the store (sealed under the store key) before it is defined
  // and before it is given up, so a crash at any point leaves a record that
  // the next open reclaims: an intent whose index no token references is
  // undefined. PIN counters are allocated from this store's own part of the
  // range (PinBase), so an intent never names another store's index.
  uint32_t PinBase();
  void RecordNvIntents(std::initializer_list<uint32_t> indices);
  void ClearNvIntents(const std::vector<uint32_t>& indices);
  void ReclaimNvIntents();
  // After the change committed: undefines drop, clears the intents of drop
  // and keep (keep: indices the committed records now reference).
  void FinishNvChange(std::initializer_list<uint32_t> drop, std::initializer_list<uint32_t> keep);
  PcrSelection StoredPcrs() const;
  // Authorized boot states (boot.cc): whether the store key is sealed under
  // PolicyAuthorize, and its unseal with the installed authorizations.
  bool BootAuthorized();
  Secret UnsealAuthorizedStoreKey(const tpm::SealedBlob& blob);
  uint32_t EnsureEpochCounter();
  // The boot epoch counter's index when this store has one (store delete).
  std::optional<uint32_t> EpochCounterIndex();
  // The SO role's PIN values, derived once per call (BindBoot needs them
  // twice after OpenRole checked the PIN).
  crypto::PinAuth SoPinAuth(const Token& t, ByteView so_pin);
  tpm::AuthorizerKey SoAuthorizer(const Token& t, const crypto::PinAuth& so);
  Bytes SignAsSo(const Token& t, const crypto::PinAuth& so, ByteView digest);
  // AuthorizeBoot after OpenRole opened the SO role.
  tpm::BootAuthorization AuthorizeBootOpened(const Token& t, const crypto::PinAuth& so,
                                             const PcrSelection& pcrs, ByteView values,
                                             std::optional<uint64_t> epoch);
  std::vector<std::pair<std::string, tpm::BootAuthorization>> InstalledAuthorizations(
      std::vector<std::string>* problems);
  std::optional<tpm::BootAuthorization> boot_opened_with_;
  void RecordPrimary();  // module.cc: where the pinned primary lives
  void RebindStoreKey(const PcrSelection& want, const Bytes& unsealed_pub);
  void RefreshTokens();
  CK_SLOT_ID NewSlotId() const;
  Token* FindToken(CK_SLOT_ID slot);
  Session* FindSession(CK_SESSION_HANDLE h);
  bool ReloadRecord(Token& t);
  void SaveRecord(Token& t);
  void ForgetObjects(Token& t);
  void DropSessionObjects(CK_SESSION_HANDLE h);
  void DropSessionObjectsIf(const std::function<bool(const Object&)>& drop);
  void LogoutToken(Token& t);
 public:
  // Per-key use counts (key_use.cc): CountUse costs no TPM command and no
  // write; FlushKeyUses writes the sums in one transaction, never throws.
  void CountUse(Session& s, const Object& key);
  void FlushKeyUses(Token& t);
  void FlushAllKeyUses();
  // A token key's uses as stored plus this process's unflushed ones
  // (zero count for a key never used or a session object).
  store::Store::KeyUse KeyUseOf(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj);

 private:

  // PIN roles (login.cc).
  CK_RV OpenRole(const Token& t, const RoleSeal& role, ByteView pin, Secret* tk);
  void ResealRole(Token& t, bool so, ByteView pin, const Secret& tk);
  RoleSeal MakeRole(bool so, ByteView pin, ByteView tk, uint32_t old_index);
  void FillPinFlags(const RoleSeal& role, bool so, CK_FLAGS* flags);

  // Objects (objects.cc).
  void Sync(Token& t);
  std::shared_ptr<Object> Resolve(Session& s, CK_OBJECT_HANDLE h);
  bool Visible(const Token& t, const Object& o) const;
  std::vector<std::shared_ptr<Object>> Candidates(Token& t, const CK_ATTRIBUTE* tmpl, CK_ULONG n);
  // The search index (object_index.cc).
  std::shared_ptr<Object> LoadRow(Token& t, const store::ObjectStamp& st);
  // Drops a cached object whose handle stays valid; TrimCache bounds the cache.
  void Uncache(Token& t, int64_t row);
  void TrimCache(Token& t);
  const crypto::HmacKey& IndexKeyOf(Token& t, bool is_private);
  store::IndexTags TagsOf(Token& t, const Object& o);
  void TagRows(Token& t, const std::vector<std::shared_ptr<Object>>& objs);
  void IndexSessionObject(Token& t, const Object& o, bool add);
  std::set<CK_OBJECT_HANDLE> SessionCandidates(const Token& t, const CK_ATTRIBUTE* tmpl,
                                               CK_ULONG n) const;
  CK_RV CheckWriteAccess(const Session& s, bool token_object, bool private_object) const;
  CK_RV StoreNewObject(Session& s, AttrSet attrs, CK_OBJECT_HANDLE* out,
                       std::shared_ptr<const KeyMaterial> key = nullptr);
  void LoadCaps();
  // TPM facts kept in the store under the store key with the time they were
  // read (tpm_facts.cc): nullopt when absent, unauthentic or a day old.
  std::optional<Bytes> RecentTpmFact(const char* name);
  void KeepTpmFact(const char* name, ByteView value);
  // The TPM's fixed properties, from the store while recent (tpm_facts.cc).
  const tpm::TpmInfo& KnownTpmInfo();
  // C_CreateObject of a key: the built template's values go into the TPM.
  CK_RV ImportPrivateKey(Session& s, AttrSet a, CK_OBJECT_HANDLE* out);
  CK_RV ImportSecretKey(Session& s, AttrSet a, CK_OBJECT_HANDLE* out);
  // Puts a private key into the TPM: `a` holds its public attributes
  // (CKA_MODULUS and CKA_PUBLIC_EXPONENT, or CKA_EC_PARAMS), `secret` its
  // CKA_PRIVATE_EXPONENT / CKA_PRIME_1 or CKA_VALUE.
  CK_RV UnwrappedPrivateKey(Session& s, AttrSet a, ByteView pkcs8, CK_OBJECT_HANDLE* out);
  CK_RV StorePrivateKey(Session& s, AttrSet a, std::map<CK_ATTRIBUTE_TYPE, Secret> secret,
                        CK_OBJECT_HANDLE* out);
  // Puts a secret value into the TPM as the key object `a` describes.
  CK_RV StoreSecretValue(Session& s, AttrSet a, Secret value, CK_OBJECT_HANDLE* out);
  CK_RV BeginHmac(Session& s, const CK_MECHANISM* mech, std::shared_ptr<Object> key, bool sign,
                  std::unique_ptr<SignState>* out);
  mech::HmacOp::TpmHmac HmacWith(const Object& key);
  mech::AesOp::TpmAes AesWith(const Object& key, bool decrypt);
  CK_RV BeginAes(const CK_MECHANISM* mech, std::shared_ptr<Object> key, bool decrypt,
                 std::unique_ptr<CipherState>* out);
  // One call of an encryption or decryption in session h (cipher.cc).
  CK_RV CipherCall(CK_SESSION_HANDLE h, bool decrypt, OpCall call, ByteView data, CK_BYTE* out,
                   CK_ULONG* out_len);
  CK_RV CipherUpdate(CipherState& st, bool decrypt, ByteView data, CK_BYTE* out,
                     CK_ULONG* out_len);
  CK_RV CipherFinish(CipherState& st, bool decrypt, ByteView data, CK_BYTE* out,
                     CK_ULONG* out_len);
  CK_RV FinishSign(Session& s, SignState& st, ByteView data, CK_BYTE* out, CK_ULONG* out_len);
  CK_RV FinishVerify(SignState& st, ByteView data, ByteView signature);
  void Persist(Token& t, Object& o);
  std::string AuditName(const Token& t, const Object& o) const;

  std::string anchor_problem_;
  Config cfg_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<tpm::Tpm> tpm_;
  Secret sk_;
  PcrSelection sk_pcrs_;
  mech::Caps caps_;
  std::vector<mech::MechEntry> table_;
  std::vector<std::unique_ptr<Token>> tokens_;
  CK_SLOT_ID free_slot_ = 0;
  std::map<CK_SESSION_HANDLE, std::unique_ptr<Session>> sessions_;
  std::unordered_map<CK_OBJECT_HANDLE, std::shared_ptr<Object>> objects_;
};

// Handles are never reused in a process, across C_Finalize too.
CK_OBJECT_HANDLE NextObjectHandle();
CK_SESSION_HANDLE NextSessionHandle();

// Copies text into a fixed PKCS#11 field, blank-padded, never NUL-terminated.
void PadField(CK_UTF8CHAR* field, size_t size, std::string_view text);

}  // namespace tpmtoken
