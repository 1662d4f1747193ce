// cudasim_contexts.h - where a simulated CUDA thread's stack lives, and how control moves
// between them. Part of cudasim_runtime.h (see there for the execution model).
//
// A context is suspended by switch_to(next), which resumes `next`; exactly one context runs
// at a time. Two kinds:
//   * ThreadContext: a real OS thread parked on a futex baton (the default; "real threads"
//     as DESIGN.md asks). ~2.5 us per switch on one CPU.
//   * FiberContext: a ucontext fiber with its own mmap'd stack, all on the launching
//     thread. ~0.3 us per switch (swapcontext still makes one sigprocmask syscall).
#pragma once
#include <sys/mman.h>
#include <ucontext.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace cudasim {

struct Context {
    int assigned = -1;   // the unstarted CUDA thread a free context is resumed to run
    virtual ~Context() = default;
    virtual void switch_to(Context* next) = 0;   // suspend this context, resume `next`
};

class Baton {   // a one-shot wake-up flag: post() once, wait() consumes it
    std::atomic<uint32_t> word_{0};
public:
    void post() {
        word_.store(1, std::memory_order_release);
#ifdef __linux__
        syscall(SYS_futex, &word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#else
        word_.notify_one();
#endif
    }
    void wait() {
        while (word_.exchange(0, std::memory_order_acquire) == 0) {
#ifdef __linux__
            syscall(SYS_futex, &word_, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
#else
            word_.wait(0, std::memory_order_acquire);
#endif
        }
    }
};

// Every pool thread of a launch runs on the CPU the launching thread was on: only one of
// them runs at a time anyway, and a wake-up on another CPU costs several times more (6x in
// the VMs this was measured on: ~15 us against ~2.5 us per switch).
inline std::atomic<int> launch_cpu{-1};

struct ThreadContext : Context {
    Baton baton;
    bool pool = false;   // false for the launching thread, whose affinity is left alone
    int cpu = -1;
    void switch_to(Context* next) override {
        static_cast<ThreadContext*>(next)->baton.post();
        wait();
    }
    void wait() {
        baton.wait();
#ifdef __linux__
        int wanted = launch_cpu.load(std::memory_order_relaxed);
        if (pool && wanted >= 0 && wanted != cpu) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(wanted, &set);
            cpu = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 ? wanted : cpu;
        }
#endif
    }
};

struct FiberContext : Context {
    static constexpr size_t STACK_BYTES = 512 * 1024;
    ucontext_t uc{};
    void* stack = nullptr;
    void switch_to(Context* next) override { swapcontext(&uc, &static_cast<FiberContext*>(next)->uc); }
};

}  // namespace cudasim
