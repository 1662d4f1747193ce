// cudasim_runtime.h - runs a kernel's blocks and threads for gpunet's cudasim backend.
//
// A header-only library that cudasim_build.py compiles once into its own shared library
// (a .h so the wheel's package data ships it). Kernel libraries do not link to it: a launch
// passes the kernel's entry point and the address of its `gpunet_cudasim_current`, and the
// kernel reaches __syncthreads and the warp operations through the `Ops` table.
//
// Execution model, chosen so that a race is wrong every time rather than now and then:
//   * Blocks run one after another, in blockIdx order (x fastest).
//   * Within a block exactly one CUDA thread runs at a time. A pass visits the threads in
//     order (ascending linear thread index in even blocks, descending in odd ones, unless
//     a launch asks for one order) and runs each until it reaches a barrier or returns.
//     A thread that reads shared memory another thread writes in the same pass therefore
//     sees the old value in one of the two orders, deterministically.
//   * When a pass ends, complete warp operations are resolved first (every live lane named
//     in the mask has posted), else a __syncthreads that every thread of the block reached
//     at the same call site releases them all. Anything else is a deadlock (a barrier in
//     divergent code, a thread that returned before a barrier others wait at), reported
//     with the threads' states instead of hanging.
//   * Each CUDA thread runs on a context with its own stack: a real OS thread (default;
//     a pool of them, reused across blocks and launches, handing a baton over a futex)
//     or a ucontext fiber on the launching thread (`fibers` = 1; about 10x cheaper per
//     switch). A context whose thread returns starts the next unstarted thread itself, so
//     a kernel without barriers runs a whole launch on one context with no switch.
//   * Threads never run at the same time, so a kernel that spins until another thread or
//     block sets a flag (a lock, a decoupled look-back) never finishes here: don't write one.
#pragma once
#define CUDASIM_RUNTIME
#include "cudasim.h"
#include "cudasim_contexts.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cudasim {

// ---- the scheduler ------------------------------------------------------------------------
enum Status : uint8_t { NOT_STARTED, READY, RUNNING, AT_SYNC, AT_WARP, DONE };
enum Order : int { ALTERNATE = 0, ASCENDING = 1, DESCENDING = 2 };
struct Post { int kind; unsigned mask; uint64_t value; int arg; int width; uint64_t result; };
struct Abort {};   // thrown out of a barrier to unwind a suspended thread of a failed launch

struct Sim {
    // the launch
    void (*entry)(void**) = nullptr;
    void** args = nullptr;
    Thread** slot = nullptr;
    dim3 grid, block;
    const char* name = "";
    int order = ALTERNATE;
    bool fibers = false;
    Context* home = nullptr;
    unsigned nthreads = 0;
    uint64_t nblocks = 0, block_id = 0;
    // the running block
    std::vector<Thread> threads;
    std::vector<uint8_t> status;
    std::vector<Context*> holder;
    std::vector<Post> posts;
    std::vector<const char*> sync_file;
    std::vector<int> sync_line;
    unsigned pos = 0;
    bool descending = false;
    int current = -1;
    bool failed = false;
    std::string error;
    // contexts, kept across launches
    std::vector<Context*> free_threads, free_fibers;
    uint64_t switches = 0, launches = 0;

    void start_block(uint64_t b);
    int next_runnable();
    int dispatch(Context* self, bool self_free);
    void run_thread(Context* self, int tid);
    void resume_as(int tid);
    bool release_warps();
    bool release_warp_group(unsigned base, unsigned lanes, unsigned first);
    bool release_block();
    void resolve_collective(unsigned base, unsigned members);
    void fail(const std::string& message);
    std::string describe_block();
    std::string block_name() const;
    Context* acquire();
    void switch_from(Context* self, Context* next) { ++switches; self->switch_to(next); }
};

inline Sim sim;
inline std::mutex launch_mutex;   // one launch at a time per process: __shared__ is static

inline void context_main(Context* self) {
    int tid = self->assigned;
    for (;;) {
        sim.run_thread(self, tid);
        tid = sim.dispatch(self, true);
    }
}

inline void fiber_start(unsigned lo, unsigned hi) {
    auto bits = (uintptr_t(hi) << 32) | uintptr_t(lo);   // makecontext passes ints only
    context_main(reinterpret_cast<Context*>(bits));
}

inline Context* Sim::acquire() {
    auto& pool = fibers ? free_fibers : free_threads;
    if (!pool.empty()) {
        Context* c = pool.back();
        pool.pop_back();
        return c;
    }
    if (fibers) {
        auto* f = new FiberContext;
        f->stack = mmap(nullptr, FiberContext::STACK_BYTES, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (f->stack == MAP_FAILED) throw std::bad_alloc();
        getcontext(&f->uc);
        f->uc.uc_stack.ss_sp = f->stack;
        f->uc.uc_stack.ss_size = FiberContext::STACK_BYTES;
        f->uc.uc_link = nullptr;
        auto bits = reinterpret_cast<uintptr_t>(static_cast<Context*>(f));
        makecontext(&f->uc, reinterpret_cast<void (*)()>(fiber_start), 2,
                    unsigned(bits & 0xffffffffu), unsigned(bits >> 32));
        return f;
    }
    auto* t = new ThreadContext;   // lives as long as the process: parked between launches
    t->pool = true;
    std::thread([t] { t->wait(); context_main(t); }).detach();
    return t;
}

inline void Sim::start_block(uint64_t b) {
    block_id = b;
    uint64_t block_serial = (launches << 40) | (b + 1);   // launch in the top bits (cp.async bookkeeping)
    uint3 idx{unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))};
    descending = order == DESCENDING || (order == ALTERNATE && (b & 1));
    for (unsigned t = 0; t < nthreads; ++t) {
        threads[t].blockIdx = idx;
        threads[t].block_serial = block_serial;
        status[t] = NOT_STARTED;
        holder[t] = nullptr;
    }
    pos = 0;
}

// The next thread to run in this block, moving to later passes and blocks; -1: launch over.
inline int Sim::next_runnable() {
    for (;;) {
        while (pos < nthreads) {
            unsigned p = pos++;
            int tid = int(descending ? nthreads - 1 - p : p);
            if (status[tid] == NOT_STARTED || status[tid] == READY) return tid;
        }
        pos = 0;
        if (failed) {   // unwind every suspended thread; start no new one
            bool any = false;
            for (unsigned t = 0; t < nthreads; ++t) {
                if (status[t] == AT_SYNC || status[t] == AT_WARP) { status[t] = READY; any = true; }
                else if (status[t] == NOT_STARTED) status[t] = DONE;
            }
            if (any) continue;
            return -1;
        }
        if (release_warps() || release_block()) continue;
        if (failed) continue;
        if (block_id + 1 >= nblocks) return -1;
        start_block(block_id + 1);
    }
}

// Hand control to whatever runs next. `self` is the calling context; `self_free` says its
// CUDA thread returned, so it may run an unstarted thread itself. Returns the thread that a
// free context must start, or -1 when a suspended `self` is resumed for its own thread.
inline int Sim::dispatch(Context* self, bool self_free) {
    int tid = next_runnable();
    if (tid < 0) {
        if (self == home) return -1;
        (fibers ? free_fibers : free_threads).push_back(self);
        switch_from(self, home);
        return self->assigned;
    }
    if (status[tid] == NOT_STARTED) {
        if (self_free) return tid;
        Context* worker = acquire();
        worker->assigned = tid;
        switch_from(self, worker);
        return -1;
    }
    Context* owner = holder[tid];
    if (owner == self) return -1;
    if (self_free) (fibers ? free_fibers : free_threads).push_back(self);
    switch_from(self, owner);
    return self_free ? self->assigned : -1;
}

inline void Sim::resume_as(int tid) {
    current = tid;
    status[tid] = RUNNING;
    *slot = &threads[tid];
}

// Denormal floats flush to zero in kernels, as the cuda backend compiles them (-ftz=true,
// which CuPy always passes): denormal inputs read as zero (x86 DAZ) and denormal results
// become zero (FTZ). Set on whatever OS thread runs a CUDA thread; the launch restores the
// caller's mode, so NumPy on the Python thread keeps IEEE denormals.
#if defined(__x86_64__) || defined(__i386__)
inline uint64_t fp_mode() { unsigned v; __asm__ volatile("stmxcsr %0" : "=m"(v)); return v; }
inline void set_fp_mode(uint64_t v) { unsigned w = unsigned(v); __asm__ volatile("ldmxcsr %0" : : "m"(w)); }
inline uint64_t flushing(uint64_t v) { return v | 0x8040u; }          // FTZ (bit 15) | DAZ (bit 6)
#elif defined(__aarch64__)
inline uint64_t fp_mode() { uint64_t v; __asm__ volatile("mrs %0, fpcr" : "=r"(v)); return v; }
inline void set_fp_mode(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
inline uint64_t flushing(uint64_t v) { return v | (uint64_t(1) << 24); }   // FPCR.FZ
#else
#error "cudasim: flush-to-zero (NVRTC's -ftz=true) is implemented for x86-64 and aarch64 only"
#endif

inline void Sim::run_thread(Context* self, int tid) {
    holder[tid] = self;
    resume_as(tid);
    set_fp_mode(flushing(fp_mode()));
    try {
        entry(args);
    } catch (const Abort&) {
    } catch (const std::exception& e) {
        fail(std::string("a C++ exception escaped the kernel: ") + e.what());
    } catch (...) {
        fail("a C++ exception escaped the kernel");
    }
    status[tid] = DONE;
}

inline void syncthreads(const char* file, int line) {
    int tid = sim.current;
    sim.status[tid] = AT_SYNC;
    sim.sync_file[tid] = file;
    sim.sync_line[tid] = line;
    sim.dispatch(sim.holder[tid], false);
    sim.resume_as(tid);
    if (sim.failed) throw Abort{};
}

inline uint64_t warp(int kind, unsigned mask, uint64_t value, int arg, int width) {
    int tid = sim.current;
    if (width < 1 || width > 32 || (width & (width - 1)))
        sim.fail("a warp shuffle's width must be a power of two up to 32; received " + std::to_string(width));
    if (sim.failed) throw Abort{};
    sim.posts[tid] = Post{kind, mask, value, arg, width, 0};
    sim.status[tid] = AT_WARP;
    sim.dispatch(sim.holder[tid], false);
    sim.resume_as(tid);
    if (sim.failed) throw Abort{};
    return sim.posts[tid].result;
}

inline const Ops ops{syncthreads, warp};

// ---- resolving barriers at the end of a pass ----------------------------------------------
inline bool Sim::release_warps() {
    bool released = false;
    for (unsigned base = 0; base < nthreads; base += 32) {
        unsigned lanes = std::min(32u, nthreads - base);
        for (unsigned lane = 0; lane < lanes; ++lane)
            if (status[base + lane] == AT_WARP && release_warp_group(base, lanes, lane)) released = true;
    }
    return released;
}

// Release the lanes of one warp that wait with the mask of lane `first`, if every live lane
// named in it is there, doing the same operation. A lane that is named but not live (past
// the end of the block) or not posting reads back its own value, as the GPU leaves it undefined.
inline bool Sim::release_warp_group(unsigned base, unsigned lanes, unsigned first) {
    const Post& head = posts[base + first];
    unsigned members = 0;
    uint64_t ballot = 0;
    for (unsigned lane = 0; lane < lanes; ++lane) {
        if (!((head.mask >> lane) & 1u)) continue;
        const Post& p = posts[base + lane];
        if (status[base + lane] != AT_WARP || p.mask != head.mask || p.kind != head.kind) return false;
        members |= 1u << lane;
        if (p.value) ballot |= uint64_t(1) << lane;
    }
    if (!((members >> first) & 1u)) return false;   // a lane not named in its own mask
    for (unsigned lane = 0; lane < lanes; ++lane) {
        if (!((members >> lane) & 1u)) continue;
        Post& p = posts[base + lane];
        unsigned width = unsigned(p.width), segment = lane & ~(width - 1), within = lane & (width - 1);
        unsigned arg = unsigned(p.arg), src = 32;
        switch (p.kind) {
            case SHFL_IDX: src = segment + (arg & (width - 1)); break;
            case SHFL_UP: src = within >= arg ? lane - arg : 32; break;
            case SHFL_DOWN: src = within + arg < width ? lane + arg : 32; break;
            case SHFL_XOR: src = (lane ^ arg) < segment + width ? lane ^ arg : 32; break;
            case BALLOT: p.result = ballot & members; continue;
            case ANY: p.result = (ballot & members) != 0; continue;
            case ALL: p.result = (ballot & members) == members; continue;
            case COLLECTIVE: p.result = 0; continue;
            default: p.result = 0; continue;
        }
        p.result = src < 32 && ((members >> src) & 1u) ? posts[base + src].value : p.value;
    }
    if (head.kind == COLLECTIVE) resolve_collective(base, members);
    for (unsigned lane = 0; lane < lanes; ++lane)
        if ((members >> lane) & 1u) status[base + lane] = READY;
    return true;
}

// Every lane of the warp posted its Collective record: run the instruction for all of them.
inline void Sim::resolve_collective(unsigned base, unsigned members) {
    Collective* records[32] = {};
    for (unsigned lane = 0; lane < 32; ++lane)
        if ((members >> lane) & 1u) records[lane] = reinterpret_cast<Collective*>(posts[base + lane].value);
    const Collective* head = records[__builtin_ctz(members)];
    const char* error = members == 0xffffffffu ? nullptr : "a warp-collective instruction needs all 32 lanes";
    for (unsigned lane = 0; lane < 32 && !error; ++lane)
        if (records[lane]->resolve != head->resolve) error = "the lanes of a warp posted different collectives";
    if (!error) error = head->resolve(records);
    if (error) fail(std::string(head->name) + ": " + error);
}

inline bool Sim::release_block() {
    unsigned waiting = 0, done = 0;
    int first = -1;
    for (unsigned t = 0; t < nthreads; ++t) {
        if (status[t] == AT_SYNC && ++waiting == 1) first = int(t);
        if (status[t] == DONE) ++done;
    }
    if (done == nthreads) return false;
    bool one_site = waiting == nthreads;
    for (unsigned t = 0; one_site && t < nthreads; ++t)
        one_site = sync_line[t] == sync_line[first] && std::strcmp(sync_file[t], sync_file[first]) == 0;
    if (!one_site) {
        fail("deadlock: " + describe_block() + ". Every thread of a block must reach each __syncthreads "
             "at the same call site, and every live lane named in a warp operation's mask must execute it.");
        return false;
    }
    for (unsigned t = 0; t < nthreads; ++t) status[t] = READY;
    return true;
}

inline std::string Sim::block_name() const {
    uint3 b = threads.empty() ? uint3{0, 0, 0} : threads[0].blockIdx;
    return "(" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) + ")";
}

// "threads 0-15: waiting at __syncthreads (conv.cu:41); threads 16-31: returned"
inline std::string Sim::describe_block() {
    static const char* kinds[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                  "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp", "a collective"};
    std::vector<std::string> states(nthreads);
    for (unsigned t = 0; t < nthreads; ++t) {
        if (status[t] == DONE) {
            states[t] = "returned";
        } else if (status[t] == AT_WARP) {
            char mask[16];
            std::snprintf(mask, sizeof mask, "0x%08x", posts[t].mask);
            const char* kind = posts[t].kind == COLLECTIVE
                                   ? reinterpret_cast<const Collective*>(posts[t].value)->name : kinds[posts[t].kind];
            states[t] = std::string("waiting in ") + kind + " (mask " + mask + ")";
        } else {
            const char* base = std::strrchr(sync_file[t], '/');
            states[t] = "waiting at __syncthreads (" + std::string(base ? base + 1 : sync_file[t]) + ":" +
                        std::to_string(sync_line[t]) + ")";
        }
    }
    std::string text;
    std::vector<std::string> done;
    for (unsigned t = 0; t < nthreads; ++t) {
        const std::string& what = states[t];
        if (std::find(done.begin(), done.end(), what) != done.end()) continue;
        done.push_back(what);
        std::string list;
        unsigned count = 0, runs = 0;
        for (unsigned u = t; u < nthreads; ++u) {
            if (states[u] != what) continue;
            unsigned end = u;
            while (end + 1 < nthreads && states[end + 1] == what) ++end;
            count += end - u + 1;
            if (++runs <= 6) list += (list.empty() ? "" : ", ") + std::to_string(u) + (u == end ? "" : "-" + std::to_string(end));
            u = end;
        }
        if (runs > 6) list += ", ... (" + std::to_string(count) + " threads)";
        text += (text.empty() ? "" : "; ") + std::string(count == 1 ? "thread " : "threads ") + list + ": " + what;
    }
    if (block.y * block.z > 1) text += " (linear thread index x + y*blockDim.x + z*blockDim.x*blockDim.y)";
    return text;
}

inline void Sim::fail(const std::string& message) {
    if (failed) return;
    failed = true;
    error = "kernel '" + std::string(name) + "', block " + block_name() + ": " + message;
}

// After fork() the child has none of the parent's pool threads; forget them.
inline int forget_pools_after_fork = pthread_atfork(nullptr, nullptr, [] {
    sim.free_threads.clear();
    sim.free_fibers.clear();
});

}  // namespace cudasim

// ---- the C entry points that cudasim.py calls through ctypes ------------------------------
extern "C" {
__attribute__((visibility("default"))) int gpunet_cudasim_runtime_abi() { return cudasim::ABI_VERSION; }

__attribute__((visibility("default"))) unsigned long long gpunet_cudasim_switches() { return cudasim::sim.switches; }

// Run `entry` (a kernel's generated entry point) over grid x block threads. `slot` is the
// kernel library's gpunet_cudasim_current. Returns 0, or 1 with a message in `err`.
__attribute__((visibility("default"))) int gpunet_cudasim_launch(
        void (*entry)(void**), void** args, cudasim::Thread** slot, const unsigned* grid,
        const unsigned* block, int order, int fibers, const char* name, char* err, size_t err_len) {
    using namespace cudasim;
    std::lock_guard<std::mutex> lock(launch_mutex);
    const uint64_t caller_fp_mode = fp_mode();   // fibers run kernels on this thread: restored below
    Sim& s = sim;
    s.entry = entry, s.args = args, s.slot = slot, s.name = name, s.order = order, s.fibers = fibers != 0;
    s.grid = dim3(grid[0], grid[1], grid[2]);
    s.block = dim3(block[0], block[1], block[2]);
    s.nthreads = block[0] * block[1] * block[2];
    s.nblocks = uint64_t(grid[0]) * grid[1] * grid[2];
    s.threads.assign(s.nthreads, Thread{});
    for (unsigned t = 0; t < s.nthreads; ++t)
        s.threads[t] = Thread{{t % block[0], (t / block[0]) % block[1], t / (block[0] * block[1])},
                              {0, 0, 0}, s.block, s.grid, &ops, 0};
    s.status.assign(s.nthreads, NOT_STARTED);
    s.holder.assign(s.nthreads, nullptr);
    s.posts.assign(s.nthreads, Post{});
    s.sync_file.assign(s.nthreads, "");
    s.sync_line.assign(s.nthreads, 0);
    s.failed = false;
    s.error.clear();
    ++s.launches;
    s.start_block(0);
#ifdef __linux__
    launch_cpu.store(sched_getcpu(), std::memory_order_relaxed);
#endif
    ThreadContext thread_home;
    FiberContext fiber_home;
    s.home = s.fibers ? static_cast<Context*>(&fiber_home) : &thread_home;
    s.dispatch(s.home, false);
    set_fp_mode(caller_fp_mode);
    *slot = nullptr;
    s.home = nullptr;
    if (!s.failed) return 0;
    std::snprintf(err, err_len, "%s", s.error.c_str());
    return 1;
}
}
