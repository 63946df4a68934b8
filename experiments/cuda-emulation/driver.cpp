// Runs launches of experiments/kernels/*.cu on the CPU (cuda_emulation.h), as described
// by a request file, and writes the buffers back: the program that the Rust test
// `ops::emulation` compiles and calls.
//
//   driver REQUEST RESPONSE
//
// Request (native byte order): "KEMU", u32 version 1; u32 buffer count, each
// (u32 dtype: 0 f32, 1 bf16, 2 u32; u64 elements; the elements); u32 launch count, each
// (u32 name length, the kernel's name; u32 grid x y z; u32 block x y z; u32 argument
// count, each (u32 kind: 0 buffer (u32 index), 1 i32, 2 f32, 3 u64, 4 bytes (u32 length,
// bytes), 5 a view into a buffer (u32 index, u64 offset in elements))).
// Response: u32 buffer count, each (u64 bytes, the bytes) after all launches.
//
// The launches run twice from the same buffers, once with blocks and threads visited in
// ascending order and once descending; the two results must be identical bit for bit
// (otherwise the result depends on the schedule: a race), else exit status 4.
//
// Arguments are checked against the kernel's C++ signature: a buffer must hold the
// pointer's element type, a scalar the parameter's type (int: i32, float: f32, size_t:
// u64, a struct: bytes of its size). The argument ORDER is the host code's, mirrored in
// experiments/src/ops/emulation/launches.rs (one function per host launch sequence).
//
// Every buffer ends at a page boundary followed by an inaccessible page: a read or write
// past a buffer's end stops the process with a message naming the buffer (exit 5).
#include "../kernels/activation.cu"
#include "../kernels/adamw.cu"
#include "../kernels/norm.cu"
#include "../kernels/picked_logprob.cu"
#include "../kernels/rotary.cu"
#include "selftest.cu"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

enum DType : uint32_t { kF32 = 0, kBf16 = 1, kU32 = 2 };
enum Kind : uint32_t { kBuffer = 0, kI32 = 1, kF32Scalar = 2, kU64 = 3, kBytes = 4, kView = 5 };

[[noreturn]] void die(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void die(int status, const char* fmt, ...) {
  fputs("cuda-emulation driver: ", stderr);
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
  exit(status);
}

size_t element_size(uint32_t dtype) {
  switch (dtype) {
    case kF32: return 4;
    case kBf16: return 2;
    case kU32: return 4;
  }
  die(2, "unknown dtype %u", dtype);
}

/// A buffer that ends where an inaccessible page begins.
struct Buffer {
  uint32_t dtype = 0;
  size_t bytes = 0;
  char* mapping = nullptr;
  size_t mapped = 0;
  char* data = nullptr;
};

std::vector<Buffer> buffers;
const char* current_kernel = "(none)";

Buffer guarded(uint32_t dtype, size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t body = (bytes + page - 1) / page * page;
  Buffer b;
  b.dtype = dtype;
  b.bytes = bytes;
  b.mapped = body + page;
  void* p = mmap(nullptr, b.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die(2, "cannot map a buffer of %zu bytes", bytes);
  b.mapping = static_cast<char*>(p);
  if (mprotect(b.mapping + body, page, PROT_NONE) != 0) die(2, "mprotect failed");
  b.data = b.mapping + body - bytes;
  return b;
}

void on_segfault(int, siginfo_t* info, void*) {
  char msg[300];
  const char* at = static_cast<const char*>(info->si_addr);
  int which = -1;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const Buffer& b = buffers[i];
    if (at >= b.data + b.bytes && at < b.mapping + b.mapped) which = static_cast<int>(i);
  }
  const int len =
      which >= 0
          ? snprintf(msg, sizeof msg,
                     "cuda-emulation: %s, block (%u,%u,%u): access past the end of buffer %d "
                     "(%zu bytes) at byte %zu\n",
                     current_kernel, cuda_emu::block_index.x, cuda_emu::block_index.y,
                     cuda_emu::block_index.z, which, buffers[which].bytes,
                     static_cast<size_t>(at - buffers[which].data))
          : snprintf(msg, sizeof msg,
                     "cuda-emulation: %s, block (%u,%u,%u): invalid memory access at %p\n",
                     current_kernel, cuda_emu::block_index.x, cuda_emu::block_index.y,
                     cuda_emu::block_index.z, info->si_addr);
  if (len > 0) (void)!write(2, msg, static_cast<size_t>(len));
  _exit(5);
}

/// One argument of a launch as the request gives it.
struct Arg {
  uint32_t kind = 0;
  uint32_t index = 0;
  uint64_t offset = 0;  // elements, for a view
  std::vector<char> bytes;
};

/// Reads the request.
struct Reader {
  FILE* f;
  template <typename T> T get() {
    T v;
    if (fread(&v, sizeof v, 1, f) != 1) die(2, "truncated request");
    return v;
  }
  std::vector<char> bytes(size_t n) {
    std::vector<char> v(n);
    if (n > 0 && fread(v.data(), 1, n, f) != n) die(2, "truncated request");
    return v;
  }
};

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr uint32_t value = kF32; };
template <> struct DTypeOf<__nv_bfloat16> { static constexpr uint32_t value = kBf16; };
template <> struct DTypeOf<uint32_t> { static constexpr uint32_t value = kU32; };

const char* kind_name(uint32_t kind) {
  switch (kind) {
    case kBuffer: return "a buffer";
    case kI32: return "an i32";
    case kF32Scalar: return "an f32";
    case kU64: return "a u64";
    case kBytes: return "bytes";
    case kView: return "a view";
  }
  return "an unknown kind";
}

/// The kernel's parameter `i` of type P from the request's argument.
template <typename P> P convert(const char* kernel, size_t i, const Arg& a) {
  auto expect = [&](uint32_t kind, const char* what) {
    if (a.kind != kind)
      die(2, "%s: argument %zu is %s, the kernel takes %s", kernel, i, kind_name(a.kind), what);
  };
  if constexpr (std::is_pointer_v<P>) {
    using E = std::remove_cv_t<std::remove_pointer_t<P>>;
    if (a.kind != kView) expect(kBuffer, "a pointer");
    if (a.index >= buffers.size()) die(2, "%s: argument %zu: no buffer %u", kernel, i, a.index);
    const Buffer& b = buffers[a.index];
    if (b.dtype != DTypeOf<E>::value)
      die(2, "%s: argument %zu: buffer %u has dtype %u, the kernel's pointer wants %u", kernel, i,
          a.index, b.dtype, DTypeOf<E>::value);
    if (a.offset * sizeof(E) > b.bytes)
      die(2, "%s: argument %zu: a view at element %llu of buffer %u (%zu bytes)", kernel, i,
          static_cast<unsigned long long>(a.offset), a.index, b.bytes);
    return reinterpret_cast<P>(b.data + a.offset * sizeof(E));
  } else if constexpr (std::is_same_v<P, int>) {
    expect(kI32, "an int");
    int v;
    memcpy(&v, a.bytes.data(), 4);
    return v;
  } else if constexpr (std::is_same_v<P, float>) {
    expect(kF32Scalar, "a float");
    float v;
    memcpy(&v, a.bytes.data(), 4);
    return v;
  } else if constexpr (std::is_same_v<P, size_t>) {
    expect(kU64, "a size_t");
    uint64_t v;
    memcpy(&v, a.bytes.data(), 8);
    return static_cast<size_t>(v);
  } else {
    static_assert(std::is_trivially_copyable_v<P>, "a kernel parameter of unknown type");
    expect(kBytes, "a struct");
    if (a.bytes.size() != sizeof(P))
      die(2, "%s: argument %zu: %zu bytes for a struct of %zu", kernel, i, a.bytes.size(),
          sizeof(P));
    P v;
    memcpy(&v, a.bytes.data(), sizeof(P));
    return v;
  }
}

/// A kernel's entry: turns the request's arguments into a call of the kernel.
using Bind = std::function<std::function<void()>(const char*, const std::vector<Arg>&)>;

template <typename... P, size_t... I>
std::function<void()> bind_args(void (*kernel)(P...), const char* name,
                                const std::vector<Arg>& args, std::index_sequence<I...>) {
  auto values = std::make_tuple(convert<P>(name, I, args[I])...);
  return [kernel, values] { std::apply(kernel, values); };
}

template <typename... P> Bind entry(void (*kernel)(P...)) {
  return [kernel](const char* name, const std::vector<Arg>& args) {
    if (args.size() != sizeof...(P))
      die(2, "%s: %zu arguments, the kernel takes %zu", name, args.size(), sizeof...(P));
    return bind_args(kernel, name, args, std::index_sequence_for<P...>{});
  };
}

/// Every extern "C" kernel of experiments/kernels, and the self-test kernels, by name.
const std::map<std::string, Bind>& kernels() {
#define K(name) {#name, entry(&name)}
  static const std::map<std::string, Bind> table = {
      K(rms_norm_fwd_f32),          K(rms_norm_fwd_bf16),
      K(rms_norm_bwd_rows_f32),     K(rms_norm_bwd_rows_bf16),
      K(layer_norm_fwd_f32),        K(layer_norm_fwd_bf16),
      K(layer_norm_bwd_rows_f32),   K(layer_norm_bwd_rows_bf16),
      K(norm_param_partials_f32),   K(norm_param_partials_bf16),
      K(norm_param_finish_f32),     K(norm_param_finish_bf16),
      K(picked_logprob_fwd_f32),    K(picked_logprob_fwd_bf16),
      K(picked_logprob_bwd_f32),    K(picked_logprob_bwd_bf16),
      K(gelu_erf_fwd_f32),          K(gelu_erf_fwd_bf16),
      K(gelu_erf_bwd_f32),          K(gelu_erf_bwd_bf16),
      K(swiglu_fwd_f32),            K(swiglu_fwd_bf16),
      K(swiglu_bwd_f32),            K(swiglu_bwd_bf16),
      K(rotary_f32),                K(rotary_bf16),
      K(adamw_step_f32),            K(adamw_step_bf16),
      K(sq_norm_partials_f32),      K(sq_norm_finish_f32),
      K(selftest_diverged_shuffle), K(selftest_skipped_barrier),
      K(selftest_missing_barrier),
  };
#undef K
  return table;
}

struct Launch {
  std::string name;
  dim3 grid, block;
  std::vector<Arg> args;
};

/// Runs every launch on fresh copies of `initial` in `order`; the final buffers' bytes.
std::vector<std::vector<char>> run(const std::vector<std::vector<char>>& initial,
                                   const std::vector<uint32_t>& dtypes,
                                   const std::vector<Launch>& launches, cuda_emu::Order order) {
  for (Buffer& b : buffers) munmap(b.mapping, b.mapped);
  buffers.clear();
  for (size_t i = 0; i < initial.size(); ++i) {
    buffers.push_back(guarded(dtypes[i], initial[i].size()));
    if (!initial[i].empty()) memcpy(buffers.back().data, initial[i].data(), initial[i].size());
  }
  for (const Launch& l : launches) {
    auto it = kernels().find(l.name);
    if (it == kernels().end()) die(2, "no kernel `%s` in experiments/kernels", l.name.c_str());
    current_kernel = l.name.c_str();
    const std::function<void()> body = it->second(l.name.c_str(), l.args);
    cuda_emu::launch(l.name.c_str(), l.grid, l.block, order, body);
  }
  std::vector<std::vector<char>> out;
  for (const Buffer& b : buffers) out.emplace_back(b.data, b.data + b.bytes);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) die(2, "usage: %s REQUEST RESPONSE", argv[0]);
  static char alt_stack[1 << 16];
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = on_segfault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);

  FILE* in = fopen(argv[1], "rb");
  if (in == nullptr) die(2, "cannot read %s", argv[1]);
  Reader r{in};
  if (memcmp(r.bytes(4).data(), "KEMU", 4) != 0 || r.get<uint32_t>() != 1)
    die(2, "%s is not a version 1 request", argv[1]);
  std::vector<std::vector<char>> initial;
  std::vector<uint32_t> dtypes;
  const uint32_t n_buffers = r.get<uint32_t>();
  for (uint32_t i = 0; i < n_buffers; ++i) {
    const uint32_t dtype = r.get<uint32_t>();
    const uint64_t elements = r.get<uint64_t>();
    dtypes.push_back(dtype);
    initial.push_back(r.bytes(elements * element_size(dtype)));
  }
  std::vector<Launch> launches(r.get<uint32_t>());
  for (Launch& l : launches) {
    const std::vector<char> name = r.bytes(r.get<uint32_t>());
    l.name.assign(name.begin(), name.end());
    l.grid.x = r.get<uint32_t>();
    l.grid.y = r.get<uint32_t>();
    l.grid.z = r.get<uint32_t>();
    l.block.x = r.get<uint32_t>();
    l.block.y = r.get<uint32_t>();
    l.block.z = r.get<uint32_t>();
    l.args.resize(r.get<uint32_t>());
    for (Arg& a : l.args) {
      a.kind = r.get<uint32_t>();
      switch (a.kind) {
        case kBuffer: a.index = r.get<uint32_t>(); break;
        case kView:
          a.index = r.get<uint32_t>();
          a.offset = r.get<uint64_t>();
          break;
        case kI32:
        case kF32Scalar: a.bytes = r.bytes(4); break;
        case kU64: a.bytes = r.bytes(8); break;
        case kBytes: a.bytes = r.bytes(r.get<uint32_t>()); break;
        default: die(2, "%s: argument of unknown kind %u", l.name.c_str(), a.kind);
      }
    }
  }
  fclose(in);

  const auto up = run(initial, dtypes, launches, cuda_emu::Order::Ascending);
  const auto down = run(initial, dtypes, launches, cuda_emu::Order::Descending);
  for (size_t i = 0; i < up.size(); ++i)
    if (up[i] != down[i]) {
      size_t at = 0;
      while (up[i][at] == down[i][at]) ++at;
      die(4,
          "buffer %zu differs at byte %zu between ascending and descending thread order: the "
          "result depends on the schedule (a race)",
          i, at);
    }

  FILE* out = fopen(argv[2], "wb");
  if (out == nullptr) die(2, "cannot write %s", argv[2]);
  const uint32_t count = static_cast<uint32_t>(up.size());
  fwrite(&count, 4, 1, out);
  for (const auto& b : up) {
    const uint64_t bytes = b.size();
    fwrite(&bytes, 8, 1, out);
    fwrite(b.data(), 1, b.size(), out);
  }
  if (fclose(out) != 0) die(2, "cannot write %s", argv[2]);
  return 0;
}
