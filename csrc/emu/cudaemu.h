// cudaemu.h: run the device code of CUDA kernels on a CPU, for tests on machines without a GPU.
//
// One OS thread per CUDA thread of a block (kept in a pool across launches), the blocks of a grid one after another (order set by
// CUDAEMU_BLOCK_ORDER = forward | reverse | shuffle). __syncthreads is a block barrier; warp
// shuffles (*_sync, full-warp masks) go through a per-warp exchange buffer between two warp
// barriers; __syncwarp (full-warp mask) is the warp barrier alone. __shared__ is `static` (one block at a time, so one copy per block); the dynamic
// shared memory (SHR_DYNAMIC_SMEM) is a fresh heap block of exactly the launch's size, filled with
// CUDAEMU_SMEM_FILL (default 0xff: NaN for float and double) so that unwritten reads show.
// Kernels are launched with SHR_LAUNCH(grid, block, smem, stream, kernel)(args...), the macro that
// the device code's launchers use (its CUDA definition is kernel<<<grid, block, smem, stream>>>).
// A failed CUDA_KERNEL_ASSERT ends its thread (as a trap ends it on a GPU) and counts an error; the
// errors of the last launch are kept for the launcher's check (take_launch_errors).
// Compile with -fsanitize=address,undefined (out-of-bounds global / shared accesses) or
// -fsanitize=thread (missing barriers: the barriers synchronise through atomics that TSan sees).
//
// Checks besides the sanitizers (each counts an error; a deadlock aborts after CUDAEMU_TIMEOUT s):
// launch limits (1024 threads, grid sizes, 48 KiB of dynamic shared memory unless the kernel was
// given more with cudaFuncSetAttribute, up to 227 KiB), a barrier reached from
// different source lines or a different number of times by the threads of a block, shuffles whose
// mask is not the warp's full mask or that read a lane that has exited, CUDA_KERNEL_ASSERT.
// Counted (take_traffic), for benchmarks/memory_traffic.py: the global memory the device code reads
// and writes through the kernels' ld / st helpers (SHR_COUNT_GLOBAL), as the distinct 32-byte
// sectors each launch touches (DRAM's unit; a sector read by many threads of a launch counts once,
// as caches serve the repeats, and every launch reads its inputs again), the launches, and the
// device temporaries the launchers allocate (count_temporary).
// Atomics (atomicInc) are sequentially consistent read-modify-writes, counted as a 4-byte read and
// write; __threadfence does nothing, as the blocks of a grid run one after another, so a kernel's
// "last block finishes the work" pattern is exercised with every block order but never with blocks
// that overlap in time.
// Not modelled: lock-step warps, memory ordering weaker than the barriers, fast-math / device libm
// ulp differences, occupancy, timing.
#pragma once

#include <linux/futex.h>
#include <math.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) alignas(n)
#define __shared__ static
#define SHR_DYNAMIC_SMEM(name) unsigned char* const name = ::cudaemu::dynamic_smem()
#define SHR_LAUNCH(grid, block, smem, stream, ...) \
  ::cudaemu::Launcher<decltype(&__VA_ARGS__)> { &__VA_ARGS__, grid, block, static_cast<size_t>(smem), stream }
#define CUDA_KERNEL_ASSERT(cond) \
  ((cond) ? void(0) : ::cudaemu::kernel_assert_fail(#cond, __FILE__, __LINE__))
#define __syncthreads() ::cudaemu::syncthreads(__FILE__, __LINE__)
#define __threadfence() ((void)0)  // the blocks run one after another: a fence between them orders nothing
#define SHR_COUNT_GLOBAL(ptr, bytes, is_write) ::cudaemu::count_global(ptr, bytes, is_write)
#define __syncwarp(mask) ::cudaemu::syncwarp(mask, __FILE__, __LINE__)
#define __shfl_down_sync(mask, var, ...) ::cudaemu::shfl(::cudaemu::kDown, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(mask, var, ...) ::cudaemu::shfl(::cudaemu::kUp, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(mask, var, ...) ::cudaemu::shfl(::cudaemu::kXor, mask, var, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_sync(mask, var, ...) ::cudaemu::shfl(::cudaemu::kIdx, mask, var, __FILE__, __LINE__, __VA_ARGS__)

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
constexpr int warpSize = 32;
using std::max;  // CUDA's device max/min overloads
using std::min;

namespace cudaemu {

inline std::atomic<int> g_errors{0};
inline std::mutex g_first_error_mutex;
inline std::string g_first_error;  // the first error message since the last take_launch_errors
inline unsigned t_blockIdx_value();
inline unsigned t_threadIdx_value();

template <typename... Args>
inline void report(const char* fmt, Args... args) {
  char msg[512], line[640];
  std::snprintf(msg, sizeof msg, fmt, args...);
  std::snprintf(line, sizeof line, "%s (block %u, thread %u)", msg, t_blockIdx_value(), t_threadIdx_value());
  std::fprintf(stderr, "cudaemu: %s\n", line);
  std::lock_guard<std::mutex> lock(g_first_error_mutex);
  if (g_errors++ == 0) g_first_error = line;
}

// The number of errors since the last call, and the first one's message; resets both.
inline int take_launch_errors(std::string* first = nullptr) {
  std::lock_guard<std::mutex> lock(g_first_error_mutex);
  const int n = g_errors.exchange(0);
  if (first) *first = g_first_error;
  g_first_error.clear();
  return n;
}

// Kernel attributes set with cudaFuncSetAttribute: the dynamic shared memory a kernel may take
// beyond the default 48 KiB, up to the emulated device's opt-in limit (an H100's 227 KiB).
constexpr int kSharedOptinMax = 227 * 1024;
inline std::mutex g_attr_mutex;
inline std::map<const void*, int> g_max_dynamic_smem;
inline int set_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > kSharedOptinMax) return 1;  // cudaErrorInvalidValue
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  g_max_dynamic_smem[kernel] = bytes;
  return 0;
}
inline size_t max_dynamic_smem(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_attr_mutex);
  const auto it = g_max_dynamic_smem.find(kernel);
  return it == g_max_dynamic_smem.end() ? size_t(48 * 1024) : size_t(it->second);
}

inline std::mutex g_launch_mutex;

// Global-memory traffic since the last take_traffic: bytes read and written (distinct 32-byte
// sectors per launch: each thread lists the sectors it touches while its block runs, the lists
// are merged when the block ends and counted when the launch ends), launches, device temporaries.
// Also the device code's accesses (ld / st calls: loads, then stores) and the bytes they ask for,
// whose ratio is the width of its accesses (16 for a Pack of 16 bytes, 4 for one float).
struct Traffic {
  uint64_t read = 0, written = 0, launches = 0, temporaries = 0, temporary_bytes = 0, host_waits = 0;
  uint64_t accesses[2] = {0, 0}, access_bytes[2] = {0, 0};
};
inline std::atomic<uint64_t> g_read{0}, g_written{0}, g_launches{0}, g_temporaries{0}, g_temporary_bytes{0},
    g_host_waits{0};
inline std::atomic<uint64_t> g_accesses[2] = {0, 0}, g_access_bytes[2] = {0, 0};
inline thread_local std::vector<uint64_t> t_sectors[2];  // read, written
inline thread_local uint64_t t_accesses[2] = {0, 0}, t_access_bytes[2] = {0, 0};
inline std::mutex g_sector_mutex;
inline std::unordered_set<uint64_t> g_sectors[2];
constexpr int kSectorShift = 5;  // 32-byte sectors
inline void count_global(const void* p, size_t bytes, bool is_write) {
  ++t_accesses[is_write];
  t_access_bytes[is_write] += bytes;
  std::vector<uint64_t>& v = t_sectors[is_write];
  const uint64_t a = reinterpret_cast<uintptr_t>(p);
  for (uint64_t s = a >> kSectorShift; s <= (a + bytes - 1) >> kSectorShift; ++s)
    if (v.empty() || v.back() != s) v.push_back(s);
}
inline void flush_traffic() {  // a thread, at the end of its block
  for (int w = 0; w < 2; ++w) {
    g_accesses[w].fetch_add(t_accesses[w]);
    g_access_bytes[w].fetch_add(t_access_bytes[w]);
    t_accesses[w] = t_access_bytes[w] = 0;
  }
  if (t_sectors[0].empty() && t_sectors[1].empty()) return;
  std::lock_guard<std::mutex> lock(g_sector_mutex);
  for (int w = 0; w < 2; ++w) {
    g_sectors[w].insert(t_sectors[w].begin(), t_sectors[w].end());
    t_sectors[w].clear();
  }
}
inline void end_launch_traffic() {  // the host, at the end of a launch
  std::lock_guard<std::mutex> lock(g_sector_mutex);
  g_read.fetch_add(g_sectors[0].size() << kSectorShift);
  g_written.fetch_add(g_sectors[1].size() << kSectorShift);
  g_sectors[0].clear();
  g_sectors[1].clear();
}
inline void count_temporary(uint64_t bytes) {
  g_temporaries.fetch_add(1);
  g_temporary_bytes.fetch_add(bytes);
}
// A device op a launcher runs through ATen (a copy, an add, a fill): a kernel on a GPU, a CPU op
// here, so it is counted from the bytes it must move.
inline void count_aten_kernel(uint64_t read, uint64_t written) {
  g_launches.fetch_add(1);
  g_read.fetch_add(read);
  g_written.fetch_add(written);
}
// A launcher's host read of device memory: on a GPU the host waits there for the queued work.
inline void count_host_wait() { g_host_waits.fetch_add(1); }
inline Traffic take_traffic() {
  Traffic t;
  t.read = g_read.exchange(0);
  t.written = g_written.exchange(0);
  t.launches = g_launches.exchange(0);
  t.temporaries = g_temporaries.exchange(0);
  t.temporary_bytes = g_temporary_bytes.exchange(0);
  t.host_waits = g_host_waits.exchange(0);
  for (int w = 0; w < 2; ++w) {
    t.accesses[w] = g_accesses[w].exchange(0);
    t.access_bytes[w] = g_access_bytes[w].exchange(0);
  }
  return t;
}

inline double env_num(const char* name, double dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : dflt;
}

struct Site {
  const char* file = nullptr;
  int line = 0;
  bool operator==(const Site& o) const { return line == o.line && (file == o.file || !std::strcmp(file, o.file)); }
};

// A reusable barrier for `expected` threads; a thread that exits leaves it (drop). The state
// (arrived, expected) is one atomic word; each arrival is an acq_rel read-modify-write and the
// thread that completes a phase publishes it with a release store of the generation, which the
// waiters load with acquire (futex sleep in between): ThreadSanitizer sees each completed phase
// as synchronising all its threads, and nothing else.
class Barrier {
 public:
  void init(int n, const char* what) {
    state_.store(uint64_t(n) << 32, std::memory_order_relaxed);
    what_ = what;
    sites_.assign(n, Site{});
    stamp_.assign(n, 0);
  }
  void arrive_and_wait(int id, Site s, bool timeout = true) {
    const uint32_t gen = gen_.load(std::memory_order_acquire);
    sites_[id] = s;
    stamp_[id] = gen + 1;
    uint64_t st = state_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (uint32_t(st) == uint32_t(st >> 32)) {
      complete(st, gen);
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double limit = timeout ? env_num("CUDAEMU_TIMEOUT", 30) : 1e300;
    for (int spin = 0; gen_.load(std::memory_order_acquire) == gen; ++spin) {
      if (spin < 16) {
        std::this_thread::yield();
        continue;
      }
      struct timespec ts {0, 50 * 1000 * 1000};
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&gen_), FUTEX_WAIT_PRIVATE, gen, &ts, nullptr, 0);
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) {
        const uint64_t now = state_.load();
        std::fprintf(stderr, "cudaemu: deadlock: thread %d waits at %s (%s:%d); %u of %u arrived\n", id, what_,
                     s.file, s.line, uint32_t(now), uint32_t(now >> 32));
        std::abort();
      }
    }
  }
  void drop() {
    const uint32_t gen = gen_.load(std::memory_order_acquire);
    const uint64_t st = state_.fetch_sub(uint64_t(1) << 32, std::memory_order_acq_rel) - (uint64_t(1) << 32);
    if (uint32_t(st) != 0 && uint32_t(st) == uint32_t(st >> 32)) complete(st, gen);
  }

 private:
  void complete(uint64_t st, uint32_t gen) {  // by the thread whose arrival (or drop) completed the phase
    const Site* first = nullptr;
    for (size_t id = 0; id < sites_.size(); ++id) {
      if (stamp_[id] != gen + 1) continue;
      if (!first) {
        first = &sites_[id];
      } else if (!(sites_[id] == *first)) {
        report("one %s reached from different places: %s:%d and %s:%d", what_, first->file, first->line,
               sites_[id].file, sites_[id].line);
        break;
      }
    }
    state_.store(st & ~uint64_t(0xffffffffu), std::memory_order_relaxed);  // arrived = 0, same expected
    gen_.store(gen + 1, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&gen_), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  }
  std::atomic<uint64_t> state_{0};  // arrived (low 32 bits), expected (high 32 bits)
  std::atomic<uint32_t> gen_{0};
  const char* what_ = "";
  std::vector<Site> sites_;
  std::vector<uint32_t> stamp_;  // gen + 1 of the phase each thread last arrived in
};

struct Warp {
  Barrier bar;
  alignas(16) unsigned char slot[32][16];
  unsigned int present = 0;                 // lanes that exist (a partial last warp has fewer)
  std::atomic<unsigned int> exited{0};      // lanes that have returned
};

struct Block {
  int nthreads = 0;
  Barrier bar;
  std::unique_ptr<Warp[]> warps;
  std::vector<uint64_t> syncs;  // __syncthreads count per thread
  unsigned char* smem = nullptr;
};

inline thread_local uint3 t_threadIdx{0, 0, 0};
inline thread_local uint3 t_blockIdx{0, 0, 0};
inline thread_local Block* t_block = nullptr;
inline thread_local int t_tid = 0;
inline dim3 g_blockDim, g_gridDim;

inline unsigned char* dynamic_smem() { return t_block->smem; }
inline unsigned t_blockIdx_value() { return t_blockIdx.x; }
inline unsigned t_threadIdx_value() { return t_threadIdx.x; }

struct Trap {};  // thrown by a failed CUDA_KERNEL_ASSERT: ends the CUDA thread

inline void kernel_assert_fail(const char* cond, const char* file, int line) {
  report("CUDA_KERNEL_ASSERT(%s) failed at %s:%d", cond, file, line);
  throw Trap{};
}

inline void syncthreads(const char* file, int line) {
  Block* b = t_block;
  ++b->syncs[t_tid];
  b->bar.arrive_and_wait(t_tid, Site{file, line});
}

// A warp barrier; the mask must be the warp's full mask (as for the shuffles).
inline void syncwarp(unsigned int mask, const char* file, int line) {
  Block* b = t_block;
  const int tid = t_tid;
  Warp& w = b->warps[tid >> 5];
  if (mask != w.present) {
    report("__syncwarp at %s:%d: mask 0x%x is not the warp's full mask 0x%x (unsupported here)", file, line, mask,
           w.present);
  }
  w.bar.arrive_and_wait(tid & 31, Site{file, line});
}

enum ShflKind { kDown, kUp, kXor, kIdx };

template <typename T>
T shfl(ShflKind kind, unsigned int mask, T var, const char* file, int line, int arg, int width = warpSize) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 16, "shuffle of a type CUDA cannot shuffle");
  Block* b = t_block;
  const int tid = t_tid, lane = tid & 31;
  Warp& w = b->warps[tid >> 5];
  if (width < 1 || width > 32 || (width & (width - 1))) report("shuffle width %d is not a power of 2 <= 32", width);
  if (mask != w.present) {
    report("shuffle at %s:%d: mask 0x%x is not the warp's full mask 0x%x (undefined in CUDA, or unsupported here)",
           file, line, mask, w.present);
  }
  std::memcpy(w.slot[lane], &var, sizeof(T));
  w.bar.arrive_and_wait(lane, Site{file, line});
  const int seg = lane / width * width;
  int src = lane;
  switch (kind) {
    case kDown: src = (lane - seg) + arg < width ? lane + arg : lane; break;
    case kUp: src = (lane - seg) >= arg ? lane - arg : lane; break;
    case kXor: src = (lane ^ arg) < seg + width ? (lane ^ arg) : lane; break;  // earlier groups: allowed
    case kIdx: src = seg + ((arg % width) + width) % width; break;
  }
  T r = var;
  if (src != lane) {
    if (!((w.present >> src) & 1u) || ((w.exited.load() >> src) & 1u)) {
      report("shuffle at %s:%d reads lane %d, which is not running", file, line, src);
    } else {
      std::memcpy(&r, w.slot[src], sizeof(T));
    }
  }
  w.bar.arrive_and_wait(lane, Site{file, line});  // the slots may be rewritten after this
  return r;
}

// OS threads kept for all launches (creating 256 threads per launch cost more than most kernels):
// start(n, body) runs body(0) ... body(n - 1) on n distinct workers, join() waits for them. The pool
// lives until the process ends (its workers are detached and wait on condition variables).
class Workers {
 public:
  void start(int n, const std::function<void(int)>* body) {
    while (static_cast<int>(slots_.size()) < n) add();
    {
      std::lock_guard<std::mutex> lock(done_mutex_);
      running_ = n;
    }
    for (int id = 0; id < n; ++id) {
      Slot& s = *slots_[id];
      {
        std::lock_guard<std::mutex> lock(s.mutex);
        s.job = body;
      }
      s.cv.notify_one();
    }
  }
  void join() {
    std::unique_lock<std::mutex> lock(done_mutex_);
    done_cv_.wait(lock, [&] { return running_ == 0; });
  }
  static Workers& get() {
    static Workers* pool = new Workers;  // never destroyed: workers may still wait at exit
    return *pool;
  }

 private:
  struct Slot {
    std::mutex mutex;
    std::condition_variable cv;
    const std::function<void(int)>* job = nullptr;
  };
  void add() {
    const int id = static_cast<int>(slots_.size());
    slots_.emplace_back(new Slot);
    Slot* s = slots_.back().get();
    std::thread([this, s, id] {
      for (;;) {
        const std::function<void(int)>* job;
        {
          std::unique_lock<std::mutex> lock(s->mutex);
          s->cv.wait(lock, [&] { return s->job != nullptr; });
          job = s->job;
          s->job = nullptr;
        }
        (*job)(id);
        std::lock_guard<std::mutex> lock(done_mutex_);
        if (--running_ == 0) done_cv_.notify_all();
      }
    }).detach();
  }
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
  int running_ = 0;
};

struct Options {
  std::string order = "forward";
  int fill = 0xff;
};
inline Options options() {
  Options o;
  if (const char* v = std::getenv("CUDAEMU_BLOCK_ORDER")) o.order = v;
  o.fill = static_cast<int>(env_num("CUDAEMU_SMEM_FILL", 0xff));
  return o;
}

// kernel<<<grid, block, smem_bytes>>>(args...); returns the number of errors found in this launch.
template <typename... P, typename... A>
int launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem_bytes, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
  const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);  // converted as a launch does
  const int errors0 = g_errors.load();
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  if (nthreads < 1 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    report("invalid block size (%d threads)", static_cast<int>(nthreads));
    return 1;
  }
  if (grid.x < 1 || grid.x > 2147483647u || grid.y < 1 || grid.y > 65535 || grid.z < 1 || grid.z > 65535) {
    report("invalid grid size (%u, %u, %u)", grid.x, grid.y, grid.z);
    return 1;
  }
  const size_t smem_limit = max_dynamic_smem(reinterpret_cast<const void*>(kernel));
  if (smem_bytes > smem_limit) {
    report("%zu bytes of dynamic shared memory, over the kernel's limit of %zu (over 48 KiB needs "
           "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))", smem_bytes, smem_limit);
    return 1;
  }
  std::lock_guard<std::mutex> lock(g_launch_mutex);  // one launch at a time: __shared__ is one static copy
  g_launches.fetch_add(1);
  const Options opt = options();
  g_blockDim = block;
  g_gridDim = grid;
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::vector<uint64_t> order(nblocks);
  std::iota(order.begin(), order.end(), 0);
  if (opt.order == "reverse") std::reverse(order.begin(), order.end());
  if (opt.order == "shuffle") std::shuffle(order.begin(), order.end(), std::mt19937_64(12345));
  const int n = static_cast<int>(nthreads), nwarps = (n + 31) / 32;
  // One OS thread per CUDA thread, kept for all the blocks of the launch; the host thread (id n)
  // sets each block up between the `start` and `end` barriers.
  Block blk;
  blk.nthreads = n;
  blk.warps.reset(new Warp[nwarps]);
  Barrier start, end;
  start.init(n + 1, "block start");
  end.init(n + 1, "block end");
  bool done = false;
  uint3 bidx{0, 0, 0};
  const Site here{__FILE__, __LINE__};
  const std::function<void(int)> body = [&](int tid) {
    t_block = &blk;
    t_tid = tid;
    t_threadIdx = uint3{tid % block.x, (tid / block.x) % block.y, tid / (block.x * block.y)};
    for (;;) {
      start.arrive_and_wait(tid, here, false);
      if (done) return;
      t_blockIdx = bidx;
      try {
        std::apply(kernel, params);
      } catch (const Trap&) {
      }
      flush_traffic();
      Warp& w = blk.warps[tid >> 5];
      w.exited.fetch_or(1u << (tid & 31));
      w.bar.drop();
      blk.bar.drop();
      end.arrive_and_wait(tid, here, false);
    }
  };
  Workers& workers = Workers::get();
  workers.start(n, &body);
  for (uint64_t bid : order) {
    blk.bar.init(n, "__syncthreads");
    for (int w = 0; w < nwarps; ++w) {
      const int lanes = std::min(32, n - 32 * w);
      blk.warps[w].present = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
      blk.warps[w].exited = 0;
      blk.warps[w].bar.init(lanes, "warp shuffle");
    }
    blk.syncs.assign(n, 0);
    // exactly smem_bytes (ASan: any byte past it is an overflow), 16-aligned as __align__(16)
    blk.smem = static_cast<unsigned char*>(::operator new(smem_bytes ? smem_bytes : 1, std::align_val_t(16)));
    std::memset(blk.smem, opt.fill, smem_bytes);
    bidx = uint3{static_cast<unsigned>(bid % grid.x), static_cast<unsigned>((bid / grid.x) % grid.y),
                 static_cast<unsigned>(bid / (uint64_t(grid.x) * grid.y))};
    start.arrive_and_wait(n, here, false);
    end.arrive_and_wait(n, here, false);
    const auto mm = std::minmax_element(blk.syncs.begin(), blk.syncs.end());
    if (*mm.first != *mm.second) {
      report("__syncthreads reached a different number of times by the threads of block %d (%d vs %d)",
             static_cast<int>(bid), static_cast<int>(*mm.first), static_cast<int>(*mm.second));
    }
    ::operator delete(blk.smem, std::align_val_t(16));
    blk.smem = nullptr;
  }
  done = true;
  start.arrive_and_wait(n, here, false);
  workers.join();
  end_launch_traffic();
  return g_errors.load() - errors0;
}

using Stream = struct StreamTag*;  // cudaStream_t: the emulator runs every launch at once, in order

// What SHR_LAUNCH builds: the launch's configuration, called with the kernel's arguments. Errors
// found in the launch stay counted for take_launch_errors.
template <typename Kernel>
struct Launcher {
  Kernel kernel;
  dim3 grid, block;
  size_t smem;
  Stream stream;
  template <typename... A>
  void operator()(A&&... args) const {
    launch(kernel, grid, block, smem, std::forward<A>(args)...);
  }
};

}  // namespace cudaemu

#define threadIdx (static_cast<const uint3&>(::cudaemu::t_threadIdx))
#define blockIdx (static_cast<const uint3&>(::cudaemu::t_blockIdx))
#define blockDim (static_cast<const dim3&>(::cudaemu::g_blockDim))
#define gridDim (static_cast<const dim3&>(::cudaemu::g_gridDim))

// CUDA's atomicInc: old = *p; *p = old >= limit ? 0 : old + 1; returns old.
inline unsigned int atomicInc(unsigned int* p, unsigned int limit) {
  ::cudaemu::count_global(p, sizeof *p, false);
  ::cudaemu::count_global(p, sizeof *p, true);
  unsigned int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (!__atomic_compare_exchange_n(p, &old, old >= limit ? 0u : old + 1u, false, __ATOMIC_SEQ_CST,
                                      __ATOMIC_SEQ_CST)) {
  }
  return old;
}
