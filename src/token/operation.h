// The PKCS#11 operation rules, once for every operation family (digest,
// sign, verify, encrypt, decrypt; 2.40 sections 5.2 and 5.8-5.12). A
// session holds one OperationSlot per family; the entry points only
// compute, and the slot decides what each answer means:
// - C_*Init while an operation runs: CKR_OPERATION_ACTIVE;
// - a single-part, update or final call with none: CKR_OPERATION_NOT_INITIALIZED;
// - a single-part call after an update or final call (or an update or final
//   call after a single-part one): CKR_OPERATION_ACTIVE, the operation left
//   as it was;
// - a length query (output pointer NULL, CKR_OK) or CKR_BUFFER_TOO_SMALL
//   keeps the operation, and so does CKR_USER_NOT_LOGGED_IN from a key with
//   CKA_ALWAYS_AUTHENTICATE (it waits for C_Login(CKU_CONTEXT_SPECIFIC),
//   2.40 section 4.9); an update that succeeds keeps it;
// - anything else ends it: a result handed out, any other error, and any
//   exception (TPM, store, memory) thrown while it ran.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <cstdint>
#include <memory>
#include <utility>

namespace tpmtoken {

// Where an operation stands. kStarted: initialized, no call yet. The values
// are part of a saved digest state (C_GetOperationState).
enum class OpPhase : uint8_t { kIdle = 0, kStarted = 1, kMultiPart = 2, kSinglePart = 3 };
// The kind of call made on a running operation.
enum class OpCall : uint8_t { kUpdate, kSingle, kFinal };

// Before a call: CKR_OK with *phase moved on, or the answer that leaves the
// operation as it is (active: whether one runs).
CK_RV AdmitOpCall(bool active, OpPhase* phase, OpCall call);
// After a call answered rv: whether the operation stays active.
bool OpContinues(OpCall call, bool length_query, CK_RV rv);

template <typename State>
class OperationSlot {
 public:
  bool active() const { return state_ != nullptr; }
  explicit operator bool() const { return active(); }
  State* operator->() const { return state_.get(); }
  OpPhase phase() const { return phase_; }

  // The first check of C_*Init.
  CK_RV CanStart() const { return state_ ? CKR_OPERATION_ACTIVE : CKR_OK; }
  // Starts the operation that an initialization built (rv: its answer; the
  // operation starts only with CKR_OK). Returns rv.
  CK_RV Started(CK_RV rv, std::unique_ptr<State>&& state, OpPhase phase = OpPhase::kStarted) {
    if (rv == CKR_OK) {
      state_ = std::move(state);
      phase_ = phase;
    }
    return rv;
  }
  // C_SessionCancel, a restored state replacing this one, a bad argument.
  void End() {
    state_.reset();
    phase_ = OpPhase::kIdle;
  }

  // Runs one call of the operation under the rules: fn(State&) computes and
  // answers; length_query: the caller passed no output buffer.
  template <typename Fn>
  CK_RV Run(OpCall call, bool length_query, Fn&& fn) {
    OpPhase next = phase_;
    if (CK_RV rv = AdmitOpCall(active(), &next, call); rv != CKR_OK) return rv;
    phase_ = next;
    CK_RV rv;
    try {
      rv = fn(*state_);
    } catch (...) {
      End();  // a failure half-way leaves nothing to continue
      throw;
    }
    if (!OpContinues(call, length_query, rv)) End();
    return rv;
  }

 private:
  std::unique_ptr<State> state_;
  OpPhase phase_ = OpPhase::kIdle;
};

}  // namespace tpmtoken
