// optim_extra.cu - fused update steps of Adagrad, Adadelta, Adamax, Nadam and Lion: one launch
// per parameter does Keras's decoupled weight decay (p -= p * weight_decay * lr) and the update.
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
// The per-step constants (bias corrections, Nadam's momentum schedule) come from the host as
// float32 arguments, computed there in double. The order of operations is Keras 3's
// (keras/src/optimizers), as in gpunet/optimizers_extra.py's NumPy reference.
// Threads: grid-stride loops; element i is read and written by one thread. Writes (=) p and slots.

#include "common.cuh"   // GRID_STRIDE_LOOP

__device__ __forceinline__ float decayed(float param, float lr, float weight_decay) {
    return weight_decay != 0.0f ? param - param * weight_decay * lr : param;
}

extern "C" __global__ void adagrad_update(float* __restrict__ p, const float* __restrict__ g,
                                          float* __restrict__ accumulator, int n, float lr, float epsilon,
                                          float weight_decay) {
    GRID_STRIDE_LOOP(i, n) {
        float grad = g[i];
        float acc = accumulator[i] + grad * grad;
        accumulator[i] = acc;
        p[i] = decayed(p[i], lr, weight_decay) - lr * grad / sqrtf(acc + epsilon);
    }
}

extern "C" __global__ void adadelta_update(float* __restrict__ p, const float* __restrict__ g,
                                           float* __restrict__ acc_grad, float* __restrict__ acc_delta, int n,
                                           float lr, float rho, float one_minus_rho, float epsilon,
                                           float weight_decay) {
    GRID_STRIDE_LOOP(i, n) {
        float grad = g[i];
        float ag = rho * acc_grad[i] + one_minus_rho * (grad * grad);
        acc_grad[i] = ag;
        float ad = acc_delta[i];
        float delta = -(sqrtf(ad + epsilon) * grad / sqrtf(ag + epsilon));
        acc_delta[i] = rho * ad + one_minus_rho * (delta * delta);
        p[i] = decayed(p[i], lr, weight_decay) + lr * delta;
    }
}

extern "C" __global__ void adamax_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                         float* __restrict__ u, int n, float lr, float one_minus_beta_1,
                                         float beta_2, float epsilon, float one_minus_beta_1_power,
                                         float weight_decay) {
    GRID_STRIDE_LOOP(i, n) {
        float grad = g[i];
        float mi = m[i] + (grad - m[i]) * one_minus_beta_1;
        float ui = fmaxf(beta_2 * u[i], fabsf(grad));
        m[i] = mi, u[i] = ui;
        p[i] = decayed(p[i], lr, weight_decay) - lr * mi / (one_minus_beta_1_power * (ui + epsilon));
    }
}

extern "C" __global__ void nadam_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                        float* __restrict__ v, int n, float lr, float one_minus_beta_1,
                                        float one_minus_beta_2, float epsilon, float m_scale, float g_scale,
                                        float one_minus_beta_2_power, float weight_decay) {
    GRID_STRIDE_LOOP(i, n) {
        float grad = g[i];
        float mi = m[i] + (grad - m[i]) * one_minus_beta_1;
        float vi = v[i] + (grad * grad - v[i]) * one_minus_beta_2;
        m[i] = mi, v[i] = vi;
        float m_hat = m_scale * mi + g_scale * grad;
        float v_hat = vi / one_minus_beta_2_power;
        p[i] = decayed(p[i], lr, weight_decay) - m_hat * lr / (sqrtf(v_hat) + epsilon);
    }
}

extern "C" __global__ void lion_update(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                       int n, float lr, float beta_1, float one_minus_beta_1, float beta_2,
                                       float one_minus_beta_2, float weight_decay) {
    GRID_STRIDE_LOOP(i, n) {
        float grad = g[i], mi = m[i];
        float direction = mi * beta_1 + grad * one_minus_beta_1;
        float sign = direction > 0.0f ? 1.0f : (direction < 0.0f ? -1.0f : direction);
        p[i] = decayed(p[i], lr, weight_decay) - lr * sign;
        m[i] = mi * beta_2 + grad * one_minus_beta_2;
    }
}
