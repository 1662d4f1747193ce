// optim_state.cuh - an optimizer's step state in device memory, read and advanced by the update
// kernels themselves (included by optim.cu, optim_extra.cu and optim_state.cu; it defines no kernels).
//
// Why on the device: a captured CUDA graph replays its launches with the arguments they were
// captured with, so the step count, the learning rate of a schedule, the loss scale and the
// "skip this step" flag of a LossScaleOptimizer cannot be Python scalars: they live here and
// the kernels compute from them. gpunet/primitives/optim_state.py is the host side.
//
// state (double[7], one per optimizer):
//   [0] iterations     updates applied so far (Keras's optimizer.iterations)
//   [1] rate           the learning rate of the last step (written by the update kernel)
//   [2] finite         1: apply this step; 0: a LossScaleOptimizer found a non-finite gradient
//   [3] scale          the dynamic loss scale (1 without a LossScaleOptimizer)
//   [4] growth         finite steps since the scale last changed
//   [5] product        Nadam's running product u(1) ... u(t) of its momentum schedule, valid
//   [6] product_step   for t = this (the host sets iterations alone: the kernel then recomputes it)
// settings (const double[9], uploaded once per optimizer configuration):
//   [0] schedule kind  0 constant, 1 ExponentialDecay, 2 CosineDecay (gpunet/schedules.py)
//   [1..5]             the schedule's numbers (see schedule_rate)
//   [6] beta_1, [7] beta_2   Adam's bias correction (0 for other optimizers)
//   [8] growth_steps   LossScaleOptimizer's dynamic_growth_steps (0: no loss scaling)
//
// Every number is computed in double, in the order gpunet/schedules.py and
// gpunet/primitives/optim.py compute it in Python (which also works in double), then rounded
// once to float32 where a kernel argument used to be a float32: the kernels see the same bits
// the host used to pass. (On the GPU, CUDA's double pow / cos may differ from the host's libm
// in the last bit of the double; the float32 rounding hides that but for rare ties.)

#pragma once

#define STATE_ITERATIONS 0
#define STATE_RATE 1
#define STATE_FINITE 2
#define STATE_SCALE 3
#define STATE_GROWTH 4
#define STATE_PRODUCT 5
#define STATE_PRODUCT_STEP 6

// The learning rate at `step` (0 for the first update), as gpunet/schedules.py computes it.
__device__ __forceinline__ double schedule_rate(const double* __restrict__ s, double step) {
    int kind = (int)s[0];
    if (kind == 1) {   // ExponentialDecay: initial, decay_steps, decay_rate, staircase
        double exponent = step / s[2];
        if (s[4] != 0.0) exponent = floor(exponent);
        return s[1] * pow(s[3], exponent);
    }
    if (kind == 2) {   // CosineDecay: initial, decay_steps, alpha, warmup_target (NaN: none), warmup_steps
        double initial = s[1], decay_steps = s[2], alpha = s[3], target = s[4], warmup = s[5];
        double start = initial;
        if (target == target) {   // a warmup target is set
            step = step < decay_steps + warmup ? step : decay_steps + warmup;
            if (step < warmup) return (target - initial) * (step / warmup) + initial;
            step -= warmup;
            start = target;
        } else {
            step = step < decay_steps ? step : decay_steps;
        }
        double cosine = 0.5 * (1.0 + cos(3.141592653589793 * step / decay_steps));
        return start * ((1.0 - alpha) * cosine + alpha);
    }
    return s[1];       // a constant rate
}

// What every block of an update kernel needs from the state, computed once per block.
struct StepRates {
    float lr;      // this step's learning rate
    float alpha;   // Adam's lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), t = iterations + 1
    int skip;      // a LossScaleOptimizer found a non-finite gradient: change nothing
};

__device__ __forceinline__ void step_rates(const double* __restrict__ state, const double* __restrict__ settings,
                                           StepRates* rates) {
    if (threadIdx.x == 0) {
        double step = state[STATE_ITERATIONS];
        double lr = schedule_rate(settings, step);
        double t = step + 1.0;
        rates->lr = (float)lr;
        rates->alpha = settings[6] != 0.0
            ? (float)(lr * sqrt(1.0 - pow(settings[7], t)) / (1.0 - pow(settings[6], t))) : 0.0f;
        rates->skip = state[STATE_FINITE] == 0.0;
    }
    __syncthreads();
}

// The step's end, by one thread: count the update, or for a skipped step halve the loss scale;
// after growth_steps finite steps in a row double it (Keras's LossScaleOptimizer); re-arm the flag.
__device__ __forceinline__ void finish_step(double* __restrict__ state, const double* __restrict__ settings,
                                            double rate) {
    double growth_steps = settings[8];
    if (state[STATE_FINITE] != 0.0) {
        state[STATE_ITERATIONS] += 1.0;
        state[STATE_RATE] = rate;
        if (growth_steps > 0.0) {
            if (state[STATE_GROWTH] == growth_steps - 1.0) {
                state[STATE_GROWTH] = 0.0;
                state[STATE_SCALE] *= 2.0;
            } else {
                state[STATE_GROWTH] += 1.0;
            }
        }
    } else {
        state[STATE_GROWTH] = 0.0;
        state[STATE_SCALE] *= 0.5;
    }
    state[STATE_FINITE] = 1.0;
}

// Called by every block of an update kernel after its updates: the block that arrives last
// finishes the step. Every block read the state before arriving, so the last one may change it.
// `product` (Nadam): the momentum schedule's product through this step, kept if the step counts.
__device__ __forceinline__ void finish_step_last_block(double* __restrict__ state, const double* __restrict__ settings,
                                                       int* __restrict__ arrivals, const double* product = nullptr) {
    __shared__ int last;
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        int blocks = gridDim.x * gridDim.y * gridDim.z;
        last = atomicAdd(&arrivals[0], 1) == blocks - 1;
        if (last) {
            arrivals[0] = 0;
            __threadfence();
            if (product != nullptr && state[STATE_FINITE] != 0.0) {
                state[STATE_PRODUCT] = *product;
                state[STATE_PRODUCT_STEP] = state[STATE_ITERATIONS] + 1.0;
            }
            finish_step(state, settings, schedule_rate(settings, state[STATE_ITERATIONS]));
        }
    }
}

// -- every parameter in one launch (optim.cu, optim_extra.cu) ----------------------------------
// tables[slot * tensors + t] is the address of array `slot` of tensor t (slot 0: the parameter,
// 1: the gradient, then the optimizer's slots); sizes[t] its element count. Grid (x, tensors):
// grid row t walks tensor t grid-stride, so element i of tensor t is one thread's.

#define TENSOR(slot) (reinterpret_cast<float*>(tables[(slot) * tensors + t]))
#define TENSOR_LOOP(i) \
    int t = blockIdx.y, n = sizes[t]; \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
