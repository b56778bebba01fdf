// What CUDA C needs to compile and run on the host, for the CUDA emulator (see driver.c): FlashGrad's
// kernel source is compiled by the host's C++ compiler after this header, and each thread block runs
// as one fiber per thread on the calling thread. __syncthreads and warp shuffles switch fibers, so
// the kernels' barriers and shuffles behave as on a GPU. Threads run in a fixed order, each until it
// waits: a missing barrier usually shows (the first thread runs ahead of the data the others were
// to write), other races do not. A barrier some threads never reach is reported as a failed launch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#include <unordered_map>
#include <utility>
#include <vector>

using std::exp; using std::log; using std::fma; using std::fmax; using std::fmin; using std::erf; using std::tanh;
using std::pow; using std::sqrt; using std::fabs;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __restrict__ __restrict

struct dim3 { unsigned x = 1, y = 1, z = 1; };

// Internal linkage (an unnamed namespace): the Float and the Double modules are loaded into one
// process, and g++ would otherwise unify the static state of inline functions across them.
namespace emu { namespace {

enum class State { runnable, atBlockBarrier, atWarpBarrier, done };

// A suspended fiber. On x86-64 a switch pushes the callee-saved registers and swaps stack pointers
// (glibc's swapcontext also saves the signal mask: a system call per switch, which dominated the
// emulated tests' time).
#if defined(__x86_64__)
extern "C" void emu_switch_stack(void** save, void* load);
asm(".text\n.globl emu_switch_stack\n.hidden emu_switch_stack\n.type emu_switch_stack,@function\nemu_switch_stack:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n  ret\n"
    ".size emu_switch_stack, .-emu_switch_stack\n");
struct Context { void* stackPointer = nullptr; };
inline void switchContext(Context& from, Context& to) { emu_switch_stack(&from.stackPointer, to.stackPointer); }
// A stack whose first switch "returns" into `entry`, with the registers' slots below the return address.
inline void startContext(Context& context, std::vector<char>& stack, void (*entry)()) {
    uintptr_t top = ((uintptr_t)stack.data() + stack.size()) & ~(uintptr_t)15;
    uintptr_t* returnSlot = (uintptr_t*)(top - 16);  // entry then starts with rsp ≡ 8 (mod 16), as after a call
    *returnSlot = (uintptr_t)entry;
    unsigned char* saved = (unsigned char*)returnSlot - 56;  // MXCSR and x87 control word, then 6 registers
    std::memset(saved, 0, 56);
    uint32_t mxcsr = 0x1f80;  // the default: round to nearest, exceptions masked
    uint16_t controlWord = 0x037f;
    std::memcpy(saved, &mxcsr, 4);
    std::memcpy(saved + 4, &controlWord, 2);
    context.stackPointer = saved;
}
#else
struct Context { ucontext_t state; };
inline void switchContext(Context& from, Context& to) { swapcontext(&from.state, &to.state); }
inline void startContext(Context& context, std::vector<char>& stack, void (*entry)()) {
    getcontext(&context.state);
    context.state.uc_stack.ss_sp = stack.data();
    context.state.uc_stack.ss_size = stack.size();
    context.state.uc_link = nullptr;
    makecontext(&context.state, entry, 0);
}
#endif

struct Fiber {
    Context context;
    std::vector<char> stack;
    dim3 thread;
    State state = State::done;
};

struct Block {
    Context scheduler;
    std::vector<Fiber> fibers;
    Fiber* current = nullptr;
    void (*kernel)(void**) = nullptr;
    void** parameters = nullptr;
    // One slot per thread for shuffles, read after the warp's barrier.
    std::vector<unsigned long long> exchange;
};

inline Block& block() { static Block state; return state; }
inline dim3& blockIndex() { static dim3 value; return value; }
inline dim3& blockSize() { static dim3 value; return value; }
inline dim3& gridSize() { static dim3 value; return value; }
inline unsigned char* dynamicShared() { alignas(16) static unsigned char memory[256 * 1024]; return memory; }

inline int linearIndex(const Fiber& fiber) {
    return (int)(fiber.thread.x + blockSize().x * (fiber.thread.y + blockSize().y * fiber.thread.z));
}

// Leaves the running fiber in `state` and returns to the scheduler.
inline void wait(State state) {
    Fiber* fiber = block().current;
    fiber->state = state;
    switchContext(fiber->context, block().scheduler);
}

inline void syncthreads() { wait(State::atBlockBarrier); }

template <typename T>
inline T shuffle(T value, int sourceLane) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    Fiber* fiber = block().current;
    const int index = linearIndex(*fiber), warpBase = index / 32 * 32;
    unsigned long long bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    block().exchange[index] = bits;
    wait(State::atWarpBarrier);  // every lane has written its value
    bits = block().exchange[warpBase + (sourceLane & 31)];
    wait(State::atWarpBarrier);  // every lane has read, so the slots can be written again
    T result;
    std::memcpy(&result, &bits, sizeof(T));
    return result;
}

inline void fiberEntry() {
    Block& b = block();
    b.kernel(b.parameters);
    b.current->state = State::done;
    switchContext(b.current->context, b.scheduler);
}

// Runs one block to completion; false (with `error`) when threads wait at barriers others never reach.
inline bool runBlock(std::string& error) {
    Block& b = block();
    for (Fiber& fiber : b.fibers) {
        fiber.state = State::runnable;
        startContext(fiber.context, fiber.stack, fiberEntry);
    }
    const int threads = (int)b.fibers.size();
    while (true) {
        for (Fiber& fiber : b.fibers) {
            if (fiber.state != State::runnable) continue;
            b.current = &fiber;
            switchContext(b.scheduler, fiber.context);
        }
        int done = 0, atBlock = 0;
        for (const Fiber& fiber : b.fibers) {
            done += fiber.state == State::done;
            atBlock += fiber.state == State::atBlockBarrier;
        }
        if (done == threads) return true;
        bool released = false;
        // A warp's barrier opens when every lane of the warp still running waits at it.
        for (int base = 0; base < threads; base += 32) {
            int live = 0, waiting = 0;
            for (int i = base; i < std::min(base + 32, threads); ++i) {
                live += b.fibers[i].state != State::done;
                waiting += b.fibers[i].state == State::atWarpBarrier;
            }
            if (waiting > 0 && waiting == live) {
                for (int i = base; i < std::min(base + 32, threads); ++i)
                    if (b.fibers[i].state == State::atWarpBarrier) b.fibers[i].state = State::runnable;
                released = true;
            }
        }
        // The block's barrier opens when every thread still running waits at it.
        if (!released && atBlock > 0 && atBlock == threads - done) {
            for (Fiber& fiber : b.fibers) if (fiber.state == State::atBlockBarrier) fiber.state = State::runnable;
            released = true;
        }
        if (!released) {
            int atWarp = threads - done - atBlock;
            error = std::to_string(atBlock) + " threads wait at __syncthreads and " + std::to_string(atWarp)
                    + " at a warp shuffle that the others never reach (" + std::to_string(done) + " finished)";
            return false;
        }
    }
}

// Kernel name → a function that calls it with its parameters read from the launch's array.
inline std::unordered_map<std::string, void (*)(void**)>& kernels() {
    static std::unordered_map<std::string, void (*)(void**)> table;
    return table;
}

template <typename F, F f> struct Trampoline;
template <typename... A, void (*f)(A...)> struct Trampoline<void (*)(A...), f> {
    static void run(void** parameters) { call(parameters, std::index_sequence_for<A...>{}); }
    template <size_t... I> static void call(void** parameters, std::index_sequence<I...>) {
        f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(parameters[I])...);
    }
};

struct Registrar {
    Registrar(const char* name, void (*trampoline)(void**)) { kernels()[name] = trampoline; }
};

}}  // namespace emu

#define threadIdx (emu::block().current->thread)
#define blockIdx (emu::blockIndex())
#define blockDim (emu::blockSize())
#define gridDim (emu::gridSize())
#define __syncthreads() emu::syncthreads()
template <typename T> inline T __shfl_xor_sync(unsigned, T value, int laneMask) {
    return emu::shuffle(value, (int)((threadIdx.x + blockDim.x * threadIdx.y) % 32) ^ laneMask);
}
template <typename T> inline T __shfl_sync(unsigned, T value, int sourceLane) { return emu::shuffle(value, sourceLane); }
inline float __int_as_float(int bits) { float value; std::memcpy(&value, &bits, 4); return value; }
#define EMU_REGISTER(name) static emu::Registrar emu_registrar_##name(#name, &emu::Trampoline<decltype(&name), &name>::run);

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))
EMU_EXPORT int emu_has_kernel(const char* name) { return emu::kernels().count(name) > 0; }

// Runs kernel `name` over the grid, block after block; 0 on success, else 1 with `error` filled.
EMU_EXPORT int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          void** parameters, char* error, size_t errorSize) {
    auto found = emu::kernels().find(name);
    if (found == emu::kernels().end()) { snprintf(error, errorSize, "no kernel named %s", name); return 1; }
    emu::Block& b = emu::block();
    const unsigned threads = bx * by * bz;
    if (b.fibers.size() != threads) {
        b.fibers.resize(threads);
        for (emu::Fiber& fiber : b.fibers) fiber.stack.resize(256 * 1024);
        b.exchange.assign(threads + 32, 0);
    }
    for (unsigned i = 0; i < threads; ++i) b.fibers[i].thread = dim3{i % bx, i / bx % by, i / (bx * by)};
    b.kernel = found->second;
    b.parameters = parameters;
    emu::blockSize() = dim3{bx, by, bz};
    emu::gridSize() = dim3{gx, gy, gz};
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x) {
                emu::blockIndex() = dim3{x, y, z};
                std::string message;
                if (!emu::runBlock(message)) {
                    snprintf(error, errorSize, "%s, block (%u, %u, %u): %s", name, x, y, z, message.c_str());
                    return 1;
                }
            }
    return 0;
}
