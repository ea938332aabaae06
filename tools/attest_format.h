// The attestation files (request, challenge, state, response): one flat
// JSON object per file whose values are strings (binary values in base64,
// RFC 4648 with padding). /work/notes/readme-attest.md documents each field.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "util/bytes.h"

namespace tpmtoken::tool {

class AttestFile {
 public:
  // Reads and parses path; nullopt (with cause) for an unreadable file, text
  // that is not a flat JSON object of strings, or another format.
  static std::optional<AttestFile> Read(const std::string& path, const std::string& format,
                                        std::string* cause);
  static std::optional<AttestFile> Parse(std::string_view text, const std::string& format,
                                         std::string* cause);
  explicit AttestFile(const std::string& format) { fields_["format"] = format; }

  void Set(const std::string& k, const std::string& v) { fields_[k] = v; }
  void SetBytes(const std::string& k, ByteView v);
  bool Has(const std::string& k) const { return fields_.count(k) != 0; }
  // nullopt when absent (or, for bytes, not base64).
  std::optional<std::string> Get(const std::string& k) const;
  std::optional<Bytes> GetBytes(const std::string& k) const;
  std::string Text() const;
  // Written with mode 0600 (state files hold the challenge's secret) through
  // a temporary file and a rename, so a reader never sees half a file.
  void Write(const std::string& path) const;

 private:
  std::map<std::string, std::string> fields_;
};

std::string Base64(ByteView b);
std::optional<Bytes> FromBase64(std::string_view s);
// A PEM block of type label around der.
std::string Pem(const char* label, ByteView der);

}  // namespace tpmtoken::tool
