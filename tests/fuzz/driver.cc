// A main() for the fuzz targets when they are not built with libFuzzer
// (-Dfuzzers=false, the default): the suite runs each target over its seed
// inputs and over deterministic mutations of them (bytes flipped, inserted,
// deleted, truncated, spliced), so every CI run exercises the parsers on
// malformed input under whatever sanitizers the build has. With -Dfuzzers=true
// (clang) libFuzzer supplies main() and this file is not used.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
std::vector<std::vector<uint8_t>> FuzzSeeds();  // each target's valid inputs

int main(int argc, char** argv) {
  const unsigned long rounds = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
  std::mt19937 rng(0x7470746b);  // fixed: a failure reproduces
  const std::vector<std::vector<uint8_t>> seeds = FuzzSeeds();
  for (const auto& s : seeds) LLVMFuzzerTestOneInput(s.data(), s.size());
  for (unsigned long i = 0; i < rounds; ++i) {
    std::vector<uint8_t> in = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = in.empty() ? 0 : rng() % in.size();
      switch (rng() % 6) {
        case 0: if (!in.empty()) in[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: if (!in.empty()) in[pos] = static_cast<uint8_t>(rng()); break;
        case 2: in.insert(in.begin() + static_cast<long>(pos), static_cast<uint8_t>(rng())); break;
        case 3: if (!in.empty()) in.erase(in.begin() + static_cast<long>(pos)); break;
        case 4: in.resize(pos); break;
        default: {
          const auto& other = seeds[rng() % seeds.size()];
          if (!other.empty()) {
            const size_t from = rng() % other.size();
            in.insert(in.begin() + static_cast<long>(pos), other.begin() + static_cast<long>(from),
                      other.end());
          }
        }
      }
    }
    LLVMFuzzerTestOneInput(in.data(), in.size());
  }
  std::printf("%zu seeds, %lu mutated inputs: no crash\n", seeds.size(), rounds);
  return 0;
}
