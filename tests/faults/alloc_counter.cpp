#include "alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<std::size_t> g_live{0};
std::atomic<std::size_t> g_peak{0};
std::atomic<std::size_t> g_largest{0};

// Each block carries its size in a header of max_align_t's size, so the
// payload keeps the alignment operator new promises.
constexpr std::size_t kHeader = alignof(std::max_align_t);

void raise(std::atomic<std::size_t>& a, std::size_t v) {
  std::size_t cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

void* counted_alloc(std::size_t n) {
  void* p = std::malloc(n + kHeader);
  if (p == nullptr) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  const std::size_t live = g_live.fetch_add(n, std::memory_order_relaxed) + n;
  raise(g_peak, live);
  raise(g_largest, n);
  return static_cast<char*>(p) + kHeader;
}

void counted_free(void* q) {
  if (q == nullptr) return;
  void* p = static_cast<char*>(q) - kHeader;
  g_live.fetch_sub(*static_cast<std::size_t*>(p), std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }

namespace xenstream::testing {

AllocWatch::AllocWatch() : base_live_(g_live.load()) {
  g_peak.store(base_live_);
  g_largest.store(0);
}

AllocStats AllocWatch::stats() const {
  AllocStats s;
  const std::size_t peak = g_peak.load();
  s.peak_live = peak > base_live_ ? peak - base_live_ : 0;
  s.largest = g_largest.load();
  return s;
}

}  // namespace xenstream::testing
