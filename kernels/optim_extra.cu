// optim_extra.cu - fused update steps of Adagrad, Adadelta, Adamax, Nadam and Lion: Keras's
// decoupled weight decay (p -= p * weight_decay * lr) and the update in one pass, for one
// parameter per launch or (the *_many kernels) every parameter in one launch.
//
// Kernels (p, g and the slots are flat float32 buffers of n elements; slots updated in place):
//   adagrad_update(p, g, accumulator, n, lr, epsilon, weight_decay)
//       acc += g^2;  p -= lr g / sqrt(acc + epsilon)
//   adadelta_update(p, g, acc_grad, acc_delta, n, lr, rho, one_minus_rho, epsilon, weight_decay)
//       acc_grad = rho acc_grad + (1 - rho) g^2;  d = -sqrt(acc_delta + eps) g / sqrt(acc_grad + eps)
//       acc_delta = rho acc_delta + (1 - rho) d^2;  p += lr d
//   adamax_update(p, g, m, u, n, lr, one_minus_beta_1, beta_2, epsilon, one_minus_beta_1_power, weight_decay)
//       m += (g - m)(1 - b1);  u = max(b2 u, |g|);  p -= lr m / ((1 - b1^t)(u + eps))
//   nadam_update(p, g, m, v, n, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_scale, g_scale,
//                one_minus_beta_2_power, weight_decay)
//       m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  m_hat = m_scale m + g_scale g
//       p -= m_hat lr / (sqrt(v / (1 - b2^t)) + eps)   (m_scale, g_scale: Keras's u_t products)
//   lion_update(p, g, m, n, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, weight_decay)
//       p -= lr sign(b1 m + (1 - b1) g);  m = b2 m + (1 - b2) g
//   adagrad_update_many / adadelta_update_many / adamax_update_many / nadam_update_many /
//   lion_update_many(tables, sizes, tensors, state, settings, arrivals, <the scalars above but
//       lr and the per-step constants>)   the same steps over every parameter in one launch
//       (tables and sizes as optim.cu's *_many kernels: optim_state.cuh's TENSOR_LOOP). The rate
//       (the schedule at the device step count) and the per-step constants come from the
//       optimizer's device state, computed in double by one thread per block as the host
//       computes them (settings[6], [7]: beta_1, beta_2 of Adamax / Nadam); a skipped step
//       (a LossScaleOptimizer's non-finite gradient) changes nothing; the last block counts the
//       step. Nadam's running product of u_t lives in the state, so each step multiplies once.
// The per-parameter kernels take the per-step constants from the host as float32 arguments,
// computed there in double. The order of operations is Keras 3's (keras/src/optimizers), as in
// gpunet/primitives/optim_extra.py's NumPy reference; both kernel forms share one element
// function, so their results are bit-identical.
// Threads: grid-stride loops; element i is read and written by one thread. Writes (=) p and slots.

#define THREADS 256

#include "common.cuh"        // GRID_STRIDE_LOOP
#include "optim_state.cuh"   // step state, TENSOR_LOOP

__device__ __forceinline__ float decayed(float param, float lr, float weight_decay) {
    return weight_decay != 0.0f ? param - param * weight_decay * lr : param;
}

// -- one element of each update ----------------------------------------------------------------

__device__ __forceinline__ void adagrad_element(float* __restrict__ p, const float* __restrict__ g,
                                                float* __restrict__ accumulator, int i, float lr, float epsilon,
                                                float weight_decay) {
    float grad = g[i];
    float acc = accumulator[i] + grad * grad;
    accumulator[i] = acc;
    p[i] = decayed(p[i], lr, weight_decay) - lr * grad / sqrtf(acc + epsilon);
}

__device__ __forceinline__ void adadelta_element(float* __restrict__ p, const float* __restrict__ g,
                                                 float* __restrict__ acc_grad, float* __restrict__ acc_delta, int i,
                                                 float lr, float rho, float one_minus_rho, float epsilon,
                                                 float weight_decay) {
    float grad = g[i];
    float ag = rho * acc_grad[i] + one_minus_rho * (grad * grad);
    acc_grad[i] = ag;
    float ad = acc_delta[i];
    float delta = -(sqrtf(ad + epsilon) * grad / sqrtf(ag + epsilon));
    acc_delta[i] = rho * ad + one_minus_rho * (delta * delta);
    p[i] = decayed(p[i], lr, weight_decay) + lr * delta;
}

__device__ __forceinline__ void adamax_element(float* __restrict__ p, const float* __restrict__ g,
                                               float* __restrict__ m, float* __restrict__ u, int i, float lr,
                                               float one_minus_beta_1, float beta_2, float epsilon,
                                               float one_minus_beta_1_power, float weight_decay) {
    float grad = g[i];
    float mi = m[i] + (grad - m[i]) * one_minus_beta_1;
    float ui = fmaxf(beta_2 * u[i], fabsf(grad));
    m[i] = mi, u[i] = ui;
    p[i] = decayed(p[i], lr, weight_decay) - lr * mi / (one_minus_beta_1_power * (ui + epsilon));
}

__device__ __forceinline__ void nadam_element(float* __restrict__ p, const float* __restrict__ g,
                                              float* __restrict__ m, float* __restrict__ v, int i, float lr,
                                              float one_minus_beta_1, float one_minus_beta_2, float epsilon,
                                              float m_scale, float g_scale, float one_minus_beta_2_power,
                                              float weight_decay) {
    float grad = g[i];
    float mi = m[i] + (grad - m[i]) * one_minus_beta_1;
    float vi = v[i] + (grad * grad - v[i]) * one_minus_beta_2;
    m[i] = mi, v[i] = vi;
    float m_hat = m_scale * mi + g_scale * grad;
    float v_hat = vi / one_minus_beta_2_power;
    p[i] = decayed(p[i], lr, weight_decay) - m_hat * lr / (sqrtf(v_hat) + epsilon);
}

__device__ __forceinline__ void lion_element(float* __restrict__ p, const float* __restrict__ g,
                                             float* __restrict__ m, int i, float lr, float beta_1,
                                             float one_minus_beta_1, float beta_2, float one_minus_beta_2,
                                             float weight_decay) {
    float grad = g[i], mi = m[i];
    float direction = mi * beta_1 + grad * one_minus_beta_1;
    float sign = direction > 0.0f ? 1.0f : (direction < 0.0f ? -1.0f : direction);
    p[i] = decayed(p[i], lr, weight_decay) - lr * sign;
    m[i] = mi * beta_2 + grad * one_minus_beta_2;
}

// -- per parameter ---------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(THREADS)
adagrad_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ accumulator, int n, float lr,
               float epsilon, float weight_decay) {
    GRID_STRIDE_LOOP(i, n) adagrad_element(p, g, accumulator, i, lr, epsilon, weight_decay);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adadelta_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ acc_grad,
                float* __restrict__ acc_delta, int n, float lr, float rho, float one_minus_rho, float epsilon,
                float weight_decay) {
    GRID_STRIDE_LOOP(i, n) adadelta_element(p, g, acc_grad, acc_delta, i, lr, rho, one_minus_rho, epsilon, weight_decay);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adamax_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m, float* __restrict__ u, int n,
              float lr, float one_minus_beta_1, float beta_2, float epsilon, float one_minus_beta_1_power,
              float weight_decay) {
    GRID_STRIDE_LOOP(i, n) adamax_element(p, g, m, u, i, lr, one_minus_beta_1, beta_2, epsilon,
                                          one_minus_beta_1_power, weight_decay);
}

extern "C" __global__ void __launch_bounds__(THREADS)
nadam_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m, float* __restrict__ v, int n,
             float lr, float one_minus_beta_1, float one_minus_beta_2, float epsilon, float m_scale, float g_scale,
             float one_minus_beta_2_power, float weight_decay) {
    GRID_STRIDE_LOOP(i, n) nadam_element(p, g, m, v, i, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_scale,
                                         g_scale, one_minus_beta_2_power, weight_decay);
}

extern "C" __global__ void __launch_bounds__(THREADS)
lion_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m, int n, float lr, float beta_1,
            float one_minus_beta_1, float beta_2, float one_minus_beta_2, float weight_decay) {
    GRID_STRIDE_LOOP(i, n) lion_element(p, g, m, i, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2,
                                        weight_decay);
}

// -- every parameter in one launch, the step's numbers from the device state -------------------

extern "C" __global__ void __launch_bounds__(THREADS)
adagrad_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                    double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                    float epsilon, float weight_decay) {
    __shared__ StepRates rates;
    step_rates(state, settings, &rates);
    if (!rates.skip) {
        TENSOR_LOOP(i) adagrad_element(TENSOR(0), TENSOR(1), TENSOR(2), i, rates.lr, epsilon, weight_decay);
    }
    finish_step_last_block(state, settings, arrivals);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adadelta_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                     double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                     float rho, float one_minus_rho, float epsilon, float weight_decay) {
    __shared__ StepRates rates;
    step_rates(state, settings, &rates);
    if (!rates.skip) {
        TENSOR_LOOP(i) adadelta_element(TENSOR(0), TENSOR(1), TENSOR(2), TENSOR(3), i, rates.lr, rho, one_minus_rho,
                                        epsilon, weight_decay);
    }
    finish_step_last_block(state, settings, arrivals);
}

extern "C" __global__ void __launch_bounds__(THREADS)
adamax_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                   double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                   float one_minus_beta_1, float beta_2, float epsilon, float weight_decay) {
    __shared__ StepRates rates;
    __shared__ float correction;   // 1 - beta_1^t, t = iterations + 1, in double as the host computes it
    step_rates(state, settings, &rates);
    if (threadIdx.x == 0) correction = (float)(1.0 - pow(settings[6], state[STATE_ITERATIONS] + 1.0));
    __syncthreads();
    if (!rates.skip) {
        TENSOR_LOOP(i) adamax_element(TENSOR(0), TENSOR(1), TENSOR(2), TENSOR(3), i, rates.lr, one_minus_beta_1,
                                      beta_2, epsilon, correction, weight_decay);
    }
    finish_step_last_block(state, settings, arrivals);
}

// Keras's Nadam momentum schedule u_t = beta_1 (1 - 0.5 * 0.96^t).
__device__ __forceinline__ double nadam_u(double beta_1, double t) { return beta_1 * (1.0 - 0.5 * pow(0.96, t)); }

struct NadamRates {
    double product;    // u_1 ... u_t
    float m_scale, g_scale, correction;
};

// As gpunet/primitives/optim_extra.py's nadam_schedule: the product from the state when it holds
// the previous step's, else multiplied up from u_1 (after the host set iterations), in order.
__device__ __forceinline__ void nadam_rates(const double* __restrict__ state, const double* __restrict__ settings,
                                            NadamRates* r) {
    if (threadIdx.x == 0) {
        double beta_1 = settings[6], step = state[STATE_ITERATIONS], t = step + 1.0;
        double product = 1.0;
        if (state[STATE_PRODUCT_STEP] == step) {
            product = state[STATE_PRODUCT];
        } else {
            for (double k = 1.0; k <= step; k += 1.0) product *= nadam_u(beta_1, k);
        }
        product *= nadam_u(beta_1, t);
        double next = nadam_u(beta_1, t + 1.0);
        r->product = product;
        r->m_scale = (float)(next / (1.0 - product * next));
        r->g_scale = (float)((1.0 - nadam_u(beta_1, t)) / (1.0 - product));
        r->correction = (float)(1.0 - pow(settings[7], t));
    }
    __syncthreads();
}

extern "C" __global__ void __launch_bounds__(THREADS)
nadam_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                  double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                  float one_minus_beta_1, float one_minus_beta_2, float epsilon, float weight_decay) {
    __shared__ StepRates rates;
    __shared__ NadamRates nadam;
    step_rates(state, settings, &rates);
    nadam_rates(state, settings, &nadam);
    if (!rates.skip) {
        TENSOR_LOOP(i) nadam_element(TENSOR(0), TENSOR(1), TENSOR(2), TENSOR(3), i, rates.lr, one_minus_beta_1,
                                     one_minus_beta_2, epsilon, nadam.m_scale, nadam.g_scale, nadam.correction,
                                     weight_decay);
    }
    finish_step_last_block(state, settings, arrivals, &nadam.product);
}

extern "C" __global__ void __launch_bounds__(THREADS)
lion_update_many(const unsigned long long* __restrict__ tables, const int* __restrict__ sizes, int tensors,
                 double* __restrict__ state, const double* __restrict__ settings, int* __restrict__ arrivals,
                 float beta_1, float one_minus_beta_1, float beta_2, float one_minus_beta_2,
                 float weight_decay) {
    __shared__ StepRates rates;
    step_rates(state, settings, &rates);
    if (!rates.skip) {
        TENSOR_LOOP(i) lion_element(TENSOR(0), TENSOR(1), TENSOR(2), i, rates.lr, beta_1, one_minus_beta_1, beta_2,
                                    one_minus_beta_2, weight_decay);
    }
    finish_step_last_block(state, settings, arrivals);
}
