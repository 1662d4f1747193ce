// optim.cu - optimizer steps, one fused launch per parameter or one for all of them, and the
// gradient-clipping kernels.
//
// Kernels:
//   sgd_update(p, g, velocity, n, lr, momentum, weight_decay, use_momentum, nesterov)
//   adam_update(p, g, m, v, v_hat, n, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, lr,
//               weight_decay, amsgrad)                       Adam, AMSGrad and AdamW
//   rmsprop_update(p, g, velocity, momentum_buf, average_grad, n, lr, rho, one_minus_rho,
//                  momentum, epsilon, weight_decay, use_momentum, centered)
//   sgd_update_many / adam_update_many / rmsprop_update_many(tables, sizes, tensors, state,
//       settings, arrivals, <the scalars above but lr and alpha>)   the same steps over every
//       parameter in one launch: tables holds the addresses of each tensor's parameter, gradient
//       and slots (uint64), sizes their element counts; each element goes through the same
//       device function as the per-parameter kernel, so the results are bit-identical to one
//       launch per parameter. lr (the schedule at the device step count) and Adam's alpha come
//       from the optimizer's device state (optim_state.cuh); a state whose flag says skip
//       (a LossScaleOptimizer's non-finite gradient) changes no parameter or slot; the last
//       block counts the step (arrivals: a zeroed counter, left zero).
//   sum_squares_partial(x, partial, n)          partial[b] = sum of x[i]^2 over block b's elements
//   sum_squares_total(partial, totals, count, slot)   totals[slot] = sum of partial[0..count)
//   clip_by_value(g, out, n, clipvalue)          out = g clipped to [-clipvalue, clipvalue]
//   clip_by_norm_apply(g, sums, out, n, clipnorm)            out = g * clipnorm / max(||g||, clipnorm)
//   clip_by_global_norm_apply(g, sums, out, n, count, clipnorm)  out = g * (clipnorm / max(norm, clipnorm))
//
// Layout: any; a parameter, its gradient and its slots are flat float32 buffers of n elements.
// Threads: the update, clip_by_value and *_apply kernels are grid-stride loops; a thread
// computes whole elements (element i is read and written by one thread only).
// Formulas and their order of operations are those of gpunet/primitives/optim.py (Keras 3's), so a
// float32 step rounds as the NumPy reference does (up to the fused multiply-adds NVRTC forms).
// Weight decay, when nonzero, comes first in the same pass: p -= p * weight_decay * lr.
// Constants the reference computes in double on the host (Adam's bias-corrected alpha,
// 1 - beta, 1 - rho) arrive as float32 arguments, as the reference's Python floats meet
// float32 arrays. Flags are ints; a slot an option does not use is never dereferenced.
// Writes: each update writes (=) p and its slots in place; the clipping kernels write (=) out.
//
// Norms, deterministic: sum_squares_partial runs a fixed grid for a given n (the caller's
// choice, at most 256 blocks); each thread adds its grid-stride elements in order, then a
// shared-memory tree adds the block's 256 sums. sum_squares_total is one block doing the same
// over the partial sums. The *_apply kernels read the finished sums (the global norm adds the
// per-gradient sums in gradient order), so the norm never leaves the device. No atomics.

#define THREADS 256

#include "common.cuh"       // GRID_STRIDE_LOOP
#include "optim_state.cuh"  // the step state the *_many kernels read and advance

// -- one element of each update: shared by the per-parameter and the multi-tensor kernels -----

__device__ __forceinline__ void sgd_element(float* __restrict__ p, const float* __restrict__ g,
                                            float* __restrict__ velocity, int i, float lr, float momentum,
                                            float weight_decay, int use_momentum, int nesterov) {
    float param = p[i], grad = g[i];
    if (weight_decay != 0.0f) param -= param * weight_decay * lr;
    if (!use_momentum) {
        p[i] = param - grad * lr;
        return;
    }
    float v = velocity[i] * momentum;
    v -= grad * lr;
    velocity[i] = v;
    p[i] = nesterov ? param + (v * momentum - grad * lr) : param + v;
}

__device__ __forceinline__ void adam_element(float* __restrict__ p, const float* __restrict__ g,
                                             float* __restrict__ m, float* __restrict__ v,
                                             float* __restrict__ v_hat, int i, float alpha,
                                             float one_minus_beta_1, float one_minus_beta_2, float epsilon,
                                             float lr, float weight_decay, int amsgrad) {
    float param = p[i], grad = g[i];
    if (weight_decay != 0.0f) param -= param * weight_decay * lr;
    float first = m[i] + (grad - m[i]) * one_minus_beta_1;
    float second = v[i] + (grad * grad - v[i]) * one_minus_beta_2;
    m[i] = first;
    v[i] = second;
    if (amsgrad) {
        float seen = v_hat[i];
        // np.maximum's NaN rule: a NaN on either side wins.
        second = (seen > second || seen != seen) ? seen : second;
        v_hat[i] = second;
    }
    p[i] = param - (first * alpha) / (sqrtf(second) + epsilon);
}

__device__ __forceinline__ void rmsprop_element(float* __restrict__ p, const float* __restrict__ g,
                                                float* __restrict__ velocity, float* __restrict__ momentum_buf,
                                                float* __restrict__ average_grad, int i, float lr, float rho,
                                                float one_minus_rho, float momentum, float epsilon,
                                                float weight_decay, int use_momentum, int centered) {
    float param = p[i], grad = g[i];
    if (weight_decay != 0.0f) param -= param * weight_decay * lr;
    float v = velocity[i] * rho;
    v += (grad * grad) * one_minus_rho;
    velocity[i] = v;
    float denominator = v + epsilon;
    if (centered) {
        float average = average_grad[i] * rho;
        average += grad * one_minus_rho;
        average_grad[i] = average;
        denominator = v - average * average + epsilon;
    }
    float increment = (grad * lr) / sqrtf(denominator);
    if (use_momentum) {
        float buffer = momentum_buf[i] * momentum;
        buffer += increment;
        momentum_buf[i] = buffer;
        increment = buffer;
    }
    p[i] = param - increment;
}

// -- per parameter ---------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(THREADS)
sgd_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ velocity, int n,
           float lr, float momentum, float weight_decay, int use_momentum, int nesterov) {
    GRID_STRIDE_LOOP(i, n) sgd_element(p, g, velocity, i, lr, momentum, weight_decay, use_momentum, nesterov);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adam_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
            float* __restrict__ v, float* __restrict__ v_hat, int n, float alpha,
            float one_minus_beta_1, float one_minus_beta_2, float epsilon, float lr,
            float weight_decay, int amsgrad) {
    GRID_STRIDE_LOOP(i, n) adam_element(p, g, m, v, v_hat, i, alpha, one_minus_beta_1, one_minus_beta_2,
                                        epsilon, lr, weight_decay, amsgrad);
}

extern "C" __global__ void __launch_bounds__(THREADS)
rmsprop_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ velocity,
               float* __restrict__ momentum_buf, float* __restrict__ average_grad, int n, float lr,
               float rho, float one_minus_rho, float momentum, float epsilon, float weight_decay,
               int use_momentum, int centered) {
    GRID_STRIDE_LOOP(i, n) rmsprop_element(p, g, velocity, momentum_buf, average_grad, i, lr, rho, one_minus_rho,
                                           momentum, epsilon, weight_decay, use_momentum, centered);
}

// -- every parameter in one launch -------------------------------------------------------------
// tables[slot * tensors + t] is the address of array `slot` of tensor t (slot 0: the parameter,
// 1: the gradient, then the optimizer's slots); sizes[t] its element count. Grid (x, tensors):
// grid row t walks tensor t grid-stride, so element i of tensor t is one thread's, as above.
// The learning rate (its schedule), Adam's step and the skip flag come from the optimizer's
// device state (optim_state.cuh), and the last block to finish counts the step there, so that
// a captured graph replays a correct step without any number from the host.

// (TENSOR, TENSOR_LOOP: optim_state.cuh)

extern "C" __global__ void __launch_bounds__(THREADS)
sgd_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                float momentum, float weight_decay, int use_momentum, int nesterov) {
    __shared__ StepRates rates;
    step_rates(state, settings, &rates);
    if (!rates.skip) {
        TENSOR_LOOP(i) sgd_element(TENSOR(0), TENSOR(1), use_momentum ? TENSOR(2) : nullptr, i, rates.lr,
                                   momentum, weight_decay, use_momentum, nesterov);
    }
    finish_step_last_block(state, settings, arrivals);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adam_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                float one_minus_beta_1, float one_minus_beta_2, float epsilon, float weight_decay,
                int amsgrad) {
    __shared__ StepRates rates;
    step_rates(state, settings, &rates);
    if (!rates.skip) {
        TENSOR_LOOP(i) adam_element(TENSOR(0), TENSOR(1), TENSOR(2), TENSOR(3), amsgrad ? TENSOR(4) : nullptr, i,
                                    rates.alpha, one_minus_beta_1, one_minus_beta_2, epsilon, rates.lr,
                                    weight_decay, amsgrad);
    }
    finish_step_last_block(state, settings, arrivals);
}

// Slots after the gradient: velocity, then momentum_buf when use_momentum, then average_grad.
extern "C" __global__ void __launch_bounds__(THREADS)
rmsprop_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                float rho, float one_minus_rho, float momentum, float epsilon, float weight_decay,
                int use_momentum, int centered) {
    __shared__ StepRates rates;
    step_rates(state, settings, &rates);
    if (!rates.skip) {
        TENSOR_LOOP(i) rmsprop_element(TENSOR(0), TENSOR(1), TENSOR(2), use_momentum ? TENSOR(3) : nullptr,
                                       centered ? TENSOR(3 + use_momentum) : nullptr, i, rates.lr, rho,
                                       one_minus_rho, momentum, epsilon, weight_decay, use_momentum, centered);
    }
    finish_step_last_block(state, settings, arrivals);
}

// Tree sum of the block's THREADS values in `cache`; the result lands in cache[0].
__device__ __forceinline__ void block_sum(float* cache) {
    int tid = threadIdx.x;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if (tid < half) cache[tid] += cache[tid + half];
        __syncthreads();
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
sum_squares_partial(const float* __restrict__ x, float* __restrict__ partial, int n) {
    __shared__ float cache[THREADS];
    float sum = 0.0f;
    GRID_STRIDE_LOOP(i, n) sum += x[i] * x[i];
    cache[threadIdx.x] = sum;
    block_sum(cache);
    if (threadIdx.x == 0) partial[blockIdx.x] = cache[0];
}

extern "C" __global__ void __launch_bounds__(THREADS)
sum_squares_total(const float* __restrict__ partial, float* __restrict__ totals, int count, int slot) {
    __shared__ float cache[THREADS];
    float sum = 0.0f;
    for (int i = threadIdx.x; i < count; i += THREADS) sum += partial[i];
    cache[threadIdx.x] = sum;
    block_sum(cache);
    if (threadIdx.x == 0) totals[slot] = cache[0];
}

extern "C" __global__ void __launch_bounds__(THREADS)
clip_by_value(const float* __restrict__ g, float* __restrict__ out, int n, float clipvalue) {
    // Comparisons rather than fminf/fmaxf, so that a NaN passes through as np.clip lets it.
    GRID_STRIDE_LOOP(i, n) {
        float value = g[i];
        out[i] = value < -clipvalue ? -clipvalue : (value > clipvalue ? clipvalue : value);
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
clip_by_norm_apply(const float* __restrict__ g, const float* __restrict__ sums, float* __restrict__ out,
                   int n, float clipnorm) {
    float norm = sqrtf(sums[0]);
    // Python's max(norm, clipnorm): a NaN norm is kept (and poisons the result).
    float bound = clipnorm > norm ? clipnorm : norm;
    GRID_STRIDE_LOOP(i, n) out[i] = g[i] * clipnorm / bound;
}

extern "C" __global__ void __launch_bounds__(THREADS)
clip_by_global_norm_apply(const float* __restrict__ g, const float* __restrict__ sums,
                          float* __restrict__ out, int n, int count, float clipnorm) {
    float total = 0.0f;
    for (int k = 0; k < count; ++k) total += sums[k];
    float norm = sqrtf(total);
    // norm - norm is 0 only for a finite norm (inf - inf and NaN - NaN are NaN); this needs
    // no isfinite, which NVRTC and the host compiler spell differently.
    float scale = norm - norm == 0.0f ? clipnorm / (clipnorm > norm ? clipnorm : norm) : NAN;
    GRID_STRIDE_LOOP(i, n) out[i] = g[i] * scale;
}
