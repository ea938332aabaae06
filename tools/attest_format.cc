#include "attest_format.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "tool.h"

namespace tpmtoken::tool {

std::string Base64(ByteView b) {
  std::string out(4 * ((b.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), b.data(),
                                static_cast<int>(b.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<Bytes> FromBase64(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  for (char c : s)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=')
      return std::nullopt;
  Bytes out(s.size() / 4 * 3 + 1);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()),
                                static_cast<int>(s.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (!s.empty() && s.back() == '=') --len;
  if (s.size() > 1 && s[s.size() - 2] == '=') --len;
  out.resize(len);
  // One encoding per value: padding only at the end, unused bits zero.
  if (Base64(out) != s) return std::nullopt;
  return out;
}

std::string Pem(const char* label, ByteView der) {
  const std::string b64 = Base64(der);
  std::string out = std::string("-----BEGIN ") + label + "-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END " + label + "-----\n";
}

void AttestFile::SetBytes(const std::string& k, ByteView v) {
  fields_[k] = Base64(v);
}

std::optional<std::string> AttestFile::Get(const std::string& k) const {
  auto it = fields_.find(k);
  if (it == fields_.end()) return std::nullopt;
  return it->second;
}

std::optional<Bytes> AttestFile::GetBytes(const std::string& k) const {
  auto v = Get(k);
  if (!v) return std::nullopt;
  return FromBase64(*v);
}

std::string AttestFile::Text() const {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : fields_) {
    out += (first ? "\n  " : ",\n  ") + JsonString(k) + ": " + JsonString(v);
    first = false;
  }
  return out + "\n}\n";
}

void AttestFile::Write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw ToolError(path + ": cannot be written", kUsage);
  const std::string text = Text();
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw ToolError(path + ": cannot be written", kUsage);
  }
}

namespace {
// A JSON string at text[i] (the opening quote); advances i past it.
std::optional<std::string> ReadString(std::string_view t, size_t& i) {
  if (i >= t.size() || t[i] != '"') return std::nullopt;
  std::string out;
  for (++i; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '"') {
      ++i;
      return out;
    }
    if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= t.size()) return std::nullopt;
    switch (t[i]) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'u': {
        if (i + 4 >= t.size()) return std::nullopt;
        const unsigned v =
            static_cast<unsigned>(std::stoul(std::string(t.substr(i + 1, 4)), nullptr, 16));
        if (v >= 0x80) return std::nullopt;  // the formats are ASCII
        out.push_back(static_cast<char>(v));
        i += 4;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}
void SkipSpace(std::string_view t, size_t& i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) ++i;
}
}  // namespace

std::optional<AttestFile> AttestFile::Parse(std::string_view t, const std::string& format,
                                            std::string* cause) {
  AttestFile f(format);
  f.fields_.clear();
  size_t i = 0;
  auto bad = [&]() -> std::optional<AttestFile> {
    *cause = "is not a flat JSON object of strings (byte " + std::to_string(i) + ")";
    return std::nullopt;
  };
  SkipSpace(t, i);
  if (i >= t.size() || t[i++] != '{') return bad();
  SkipSpace(t, i);
  if (i < t.size() && t[i] == '}') {
    ++i;
  } else {
    for (;;) {
      SkipSpace(t, i);
      std::optional<std::string> k;
      try {
        k = ReadString(t, i);
      } catch (const std::exception&) {
        return bad();
      }
      if (!k) return bad();
      SkipSpace(t, i);
      if (i >= t.size() || t[i++] != ':') return bad();
      SkipSpace(t, i);
      std::optional<std::string> v;
      try {
        v = ReadString(t, i);
      } catch (const std::exception&) {
        return bad();
      }
      if (!v || f.fields_.count(*k)) return bad();  // a repeated key is ambiguous
      f.fields_[*k] = *v;
      SkipSpace(t, i);
      if (i < t.size() && t[i] == ',') {
        ++i;
        continue;
      }
      if (i < t.size() && t[i] == '}') {
        ++i;
        break;
      }
      return bad();
    }
  }
  SkipSpace(t, i);
  if (i != t.size()) return bad();
  if (f.Get("format") != format) {
    *cause = "is not a " + format + " file";
    return std::nullopt;
  }
  return f;
}

std::optional<AttestFile> AttestFile::Read(const std::string& path, const std::string& format,
                                           std::string* cause) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *cause = "cannot be read";
    return std::nullopt;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > (1u << 20)) {
    *cause = "is larger than any attestation file";
    return std::nullopt;
  }
  return Parse(text, format, cause);
}

}  // namespace tpmtoken::tool
