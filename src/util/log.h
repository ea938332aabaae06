// One-line diagnostics to stderr. The level comes from TPMTOKEN_LOG or the
// config file (error, warn, info, debug); errors are always shown.
// Arguments are streamed one after another: log::Error("store ", path, ": ", why).
#pragma once
#include <sstream>
#include <string>
#include <string_view>

namespace tpmtoken::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLevel(Level level);
Level ParseLevel(std::string_view name, Level fallback);
bool Enabled(Level level);
void Write(Level level, std::string_view message);

template <typename... Args>
std::string Cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <typename... Args>
void Error(Args&&... args) {
  Write(Level::kError, Cat(std::forward<Args>(args)...));
}
template <typename... Args>
void Warn(Args&&... args) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, Cat(std::forward<Args>(args)...));
}
template <typename... Args>
void Info(Args&&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, Cat(std::forward<Args>(args)...));
}
template <typename... Args>
void Debug(Args&&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, Cat(std::forward<Args>(args)...));
}

}  // namespace tpmtoken::log
