// The scheduler of the CUDA emulation (see include/cuda_emulation.h for the model): one
// fiber per thread of a block, run until it blocks at a barrier or a warp exchange or
// ends; barriers and exchanges are released only when complete; anything else that
// stops every thread is a deadlock and ends the process.
#include "cuda_emulation.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace cuda_emu {

uint3 block_index;
dim3 block_dim;
dim3 grid_dim;

namespace {

/// Bytes of stack per fiber (the kernels' frames are small; glibc's math needs little).
constexpr size_t kStack = 64 * 1024;

enum class State { Runnable, AtBarrier, AtShuffle, Done };

struct Fiber {
  ucontext_t context;
  uint3 index;
  State state = State::Runnable;
  // Where it waits (barrier or exchange) and, for an exchange, what it brought.
  const char* file = nullptr;
  int line = 0;
  uint32_t mask = 0, bits = 0;
  int lane_mask = 0, width = 0;
};

struct Block {
  const char* kernel = "";
  std::vector<Fiber> fibers;
  size_t current = 0;
  ucontext_t scheduler;
  const std::function<void()>* body = nullptr;
  char* stacks = nullptr;
  size_t stack_count = 0;
};

Block block;

const char* state_name(State s) {
  switch (s) {
    case State::Runnable: return "runnable";
    case State::AtBarrier: return "at __syncthreads";
    case State::AtShuffle: return "at __shfl_xor_sync";
    case State::Done: return "exited";
  }
  return "?";
}

void fiber_main() {
  (*block.body)();
  block.fibers[block.current].state = State::Done;
  swapcontext(&block.fibers[block.current].context, &block.scheduler);
  abort();  // never resumed
}

/// Suspends the running fiber (its state already set) and returns to the scheduler.
void suspend() {
  Fiber& f = block.fibers[block.current];
  swapcontext(&f.context, &block.scheduler);
}

/// Stacks for `count` fibers, reused across blocks.
void ensure_stacks(size_t count) {
  if (block.stack_count >= count) return;
  if (block.stacks != nullptr) munmap(block.stacks, block.stack_count * kStack);
  void* p = mmap(nullptr, count * kStack, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fail("cannot map %zu fiber stacks", count);
  block.stacks = static_cast<char*>(p);
  block.stack_count = count;
}

/// A description of every thread that is not runnable, for a deadlock report.
std::string describe_states() {
  std::string s;
  for (const Fiber& f : block.fibers) {
    char line[200];
    snprintf(line, sizeof line, "  thread (%u,%u,%u): %s", f.index.x, f.index.y, f.index.z,
             state_name(f.state));
    s += line;
    if (f.state == State::AtBarrier || f.state == State::AtShuffle) {
      snprintf(line, sizeof line, " at %s:%d", f.file, f.line);
      s += line;
    }
    s += "\n";
  }
  return s;
}

/// Completes every warp whose 32 lanes all wait at one exchange; whether any did.
bool release_warps() {
  bool released = false;
  const size_t n = block.fibers.size();
  for (size_t w = 0; w * 32 < n; ++w) {
    const size_t first = w * 32, lanes = n - first < 32 ? n - first : 32;
    size_t waiting = 0;
    for (size_t l = 0; l < lanes; ++l)
      waiting += block.fibers[first + l].state == State::AtShuffle;
    if (waiting == 0) continue;
    if (lanes < 32)
      fail("__shfl_xor_sync in warp %zu, which has only %zu of 32 lanes (blockDim %u x %u x %u)",
           w, lanes, block_dim.x, block_dim.y, block_dim.z);
    if (waiting < 32) continue;  // the others may still arrive
    const Fiber& a = block.fibers[first];
    for (size_t l = 1; l < 32; ++l) {
      const Fiber& b = block.fibers[first + l];
      if (b.line != a.line || strcmp(b.file, a.file) != 0 || b.mask != a.mask ||
          b.lane_mask != a.lane_mask || b.width != a.width)
        fail("warp %zu: lane 0 shuffles at %s:%d (lane mask %d) but lane %zu at %s:%d (lane "
             "mask %d)",
             w, a.file, a.line, a.lane_mask, l, b.file, b.line, b.lane_mask);
    }
    uint32_t values[32];
    for (size_t l = 0; l < 32; ++l) values[l] = block.fibers[first + l].bits;
    for (size_t l = 0; l < 32; ++l) {
      Fiber& f = block.fibers[first + l];
      f.bits = values[l ^ static_cast<size_t>(f.lane_mask)];
      f.state = State::Runnable;
    }
    released = true;
  }
  return released;
}

/// Releases the block barrier when every thread waits at it; whether it did.
bool release_barrier() {
  const Fiber* first = nullptr;
  size_t done = 0;
  for (const Fiber& f : block.fibers) {
    if (f.state == State::Done) {
      ++done;
    } else if (f.state != State::AtBarrier) {
      return false;
    } else if (first == nullptr) {
      first = &f;
    }
  }
  if (first == nullptr) return false;
  if (done > 0)
    fail("__syncthreads at %s:%d reached while %zu threads of the block had exited:\n%s",
         first->file, first->line, done, describe_states().c_str());
  for (const Fiber& f : block.fibers)
    if (f.line != first->line || strcmp(f.file, first->file) != 0)
      fail("threads wait at different __syncthreads (%s:%d and %s:%d):\n%s", first->file,
           first->line, f.file, f.line, describe_states().c_str());
  for (Fiber& f : block.fibers) f.state = State::Runnable;
  return true;
}

/// Runs one block to its end.
void run_block(Order order) {
  const size_t n = block.fibers.size();
  ensure_stacks(n);
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = block.fibers[i];
    f.state = State::Runnable;
    if (getcontext(&f.context) != 0) fail("getcontext failed");
    f.context.uc_stack.ss_sp = block.stacks + i * kStack;
    f.context.uc_stack.ss_size = kStack;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
  }
  // Warp by warp, greedily: the first warp in `order` with a runnable lane runs (its
  // lanes in `order`) until every lane is blocked or done, then the next. So one warp
  // runs as far ahead of the others as the barriers allow, in the opposite direction
  // for the other order: a missing barrier between warps shows as a result that
  // differs between the two orders.
  const size_t warps = (n + 31) / 32;
  for (;;) {
    bool ran = false;
    for (size_t k = 0; k < warps && !ran; ++k) {
      const size_t w = order == Order::Ascending ? k : warps - 1 - k;
      const size_t first = w * 32, lanes = n - first < 32 ? n - first : 32;
      for (size_t j = 0; j < lanes; ++j) {
        const size_t i = first + (order == Order::Ascending ? j : lanes - 1 - j);
        if (block.fibers[i].state != State::Runnable) continue;
        block.current = i;
        swapcontext(&block.scheduler, &block.fibers[i].context);
        ran = true;
      }
    }
    if (ran) {
      release_warps();
      continue;
    }
    bool all_done = true;
    for (const Fiber& f : block.fibers) all_done = all_done && f.state == State::Done;
    if (all_done) return;
    if (release_warps() || release_barrier()) continue;
    fail("deadlock: no thread of the block can continue:\n%s", describe_states().c_str());
  }
}

}  // namespace

void fail(const char* fmt, ...) {
  fprintf(stderr, "cuda-emulation: %s, block (%u,%u,%u): ", block.kernel, block_index.x,
          block_index.y, block_index.z);
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
  fflush(stderr);
  _exit(3);
}

const uint3& thread_index() { return block.fibers[block.current].index; }

void syncthreads(const char* file, int line) {
  Fiber& f = block.fibers[block.current];
  f.state = State::AtBarrier;
  f.file = file;
  f.line = line;
  suspend();
}

uint32_t shfl_xor_bits(uint32_t mask, uint32_t bits, int lane_mask, int width, const char* file,
                       int line) {
  if (mask != 0xffffffffu)
    fail("%s:%d: __shfl_xor_sync with mask %#x (the emulation supports full warps only)", file,
         line, mask);
  if (width != 32 || lane_mask < 0 || lane_mask > 31)
    fail("%s:%d: __shfl_xor_sync with lane mask %d, width %d", file, line, lane_mask, width);
  Fiber& f = block.fibers[block.current];
  f.state = State::AtShuffle;
  f.file = file;
  f.line = line;
  f.mask = mask;
  f.bits = bits;
  f.lane_mask = lane_mask;
  f.width = width;
  suspend();
  return block.fibers[block.current].bits;
}

void launch(const char* name, dim3 grid, dim3 blk, Order order,
            const std::function<void()>& body) {
  block.kernel = name;
  const size_t threads = static_cast<size_t>(blk.x) * blk.y * blk.z;
  if (threads == 0 || threads > 1024 || blk.z > 64)
    fail("a block of %u x %u x %u threads (CUDA allows 1 to 1024, z <= 64)", blk.x, blk.y, blk.z);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    fail("a grid of %u x %u x %u blocks (y and z at most 65535, none 0)", grid.x, grid.y, grid.z);
  grid_dim = grid;
  block_dim = blk;
  block.body = &body;
  block.fibers.assign(threads, Fiber{});
  // Linear thread id = x + y X + z X Y; warps are runs of 32 linear ids.
  for (size_t i = 0; i < threads; ++i) {
    const unsigned id = static_cast<unsigned>(i);
    block.fibers[i].index = uint3{id % blk.x, (id / blk.x) % blk.y, id / (blk.x * blk.y)};
  }
  const size_t blocks = static_cast<size_t>(grid.x) * grid.y * grid.z;
  for (size_t k = 0; k < blocks; ++k) {
    const size_t b = order == Order::Ascending ? k : blocks - 1 - k;
    block_index = uint3{static_cast<unsigned>(b % grid.x),
                        static_cast<unsigned>((b / grid.x) % grid.y),
                        static_cast<unsigned>(b / (static_cast<size_t>(grid.x) * grid.y))};
    run_block(order);
  }
  block.body = nullptr;
}

}  // namespace cuda_emu
