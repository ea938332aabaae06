#include "util/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace tpmtoken::log {
namespace {

Level InitialLevel() {
  const char* env = std::getenv("TPMTOKEN_LOG");
  return env ? ParseLevel(env, Level::kError) : Level::kError;
}

std::atomic<Level>& Current() {
  static std::atomic<Level> level{InitialLevel()};
  return level;
}

}  // namespace

void SetLevel(Level level) { Current() = level; }

Level ParseLevel(std::string_view name, Level fallback) {
  if (name == "error") return Level::kError;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "info") return Level::kInfo;
  if (name == "debug") return Level::kDebug;
  return fallback;
}

bool Enabled(Level level) { return level <= Current().load(std::memory_order_relaxed); }

void Write(Level level, std::string_view message) {
  static constexpr const char* kNames[] = {"error", "warning", "info", "debug"};
  // One fprintf per line so lines from several threads do not interleave.
  std::fprintf(stderr, "tpmtoken %s: %.*s\n", kNames[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace tpmtoken::log
