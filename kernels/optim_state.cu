// optim_state.cu - the step-state kernels of an optimizer (optim_state.cuh holds the state's
// layout) and of Keras's LossScaleOptimizer, whose whole step stays on the device: no kernel
// here makes the host wait, and a captured graph replays them as they are.
//
// Kernels:
//   loss_scale_seed<T>(dy, out, n, state)   out = dy * scale: the loss gradient that starts the
//       backward pass, multiplied by the dynamic loss scale (Keras multiplies the loss itself);
//       T float, bf16_t or fp16_t (the activations' dtype), computed in float32, rounded once:
//       a scale too large for fp16 gives inf here, and the step is then skipped
//   loss_scale_seed_narrow<T>(dy, out, n, state)   the same from a float32 dy (the loss of a 16-bit
//       prediction computed in float32, as Keras computes it) into T: scaled, then rounded once
//   loss_scale_unscale_many(tables, sizes, tensors, state)   every gradient, in place:
//       g = g / scale; any non-finite g (checked before the division, as Keras checks the scaled
//       gradients) clears state's finite flag, so that the update kernels skip the step
//   finish_step_kernel(state, settings)     one thread: the step's end (count it, or halve the
//       scale; grow it after growth_steps finite steps; re-arm the flag), for optimizers whose
//       update is not one *_many kernel that finishes the step itself
//
// Layout: flat float32 buffers; tables / sizes as optim.cu's *_many kernels take them (here one
// array per tensor: the gradient). Threads: grid-stride loops, one element per thread per step.
// The flag is only ever cleared by these threads (several may write the same 0.0: a benign race
// with one possible result) and set again by finish_step, a later launch: deterministic.

#define THREADS 256

#include "common.cuh"        // GRID_STRIDE_LOOP
#include "dtype.cuh"         // to_float, from_float
#include "optim_state.cuh"   // STATE_*, finish_step

template <class T> __global__ void __launch_bounds__(THREADS)
loss_scale_seed(const T* __restrict__ dy, T* __restrict__ out, int n, const double* __restrict__ state) {
    float scale = (float)state[STATE_SCALE];
    GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(to_float(dy[i]) * scale);
}

template <class T> __global__ void __launch_bounds__(THREADS)
loss_scale_seed_narrow(const float* __restrict__ dy, T* __restrict__ out, int n, const double* __restrict__ state) {
    float scale = (float)state[STATE_SCALE];
    GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(dy[i] * scale);
}

extern "C" __global__ void __launch_bounds__(THREADS)
loss_scale_unscale_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                        double* __restrict__ state) {
    float scale = (float)state[STATE_SCALE];
    int t = blockIdx.y, n = sizes[t];
    float* g = reinterpret_cast<float*>(tables[t]);
    bool finite = true;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float value = g[i];
        // value - value is 0 only for a finite value (inf - inf and NaN - NaN are NaN).
        finite = finite && value - value == 0.0f;
        g[i] = value / scale;
    }
    if (!finite) state[STATE_FINITE] = 0.0;
}

extern "C" __global__ void __launch_bounds__(1)
finish_step_kernel(double* __restrict__ state, const double* __restrict__ settings) {
    if (threadIdx.x == 0 && blockIdx.x == 0) finish_step(state, settings, schedule_rate(settings, state[STATE_ITERATIONS]));
}
