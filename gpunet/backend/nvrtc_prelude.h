// nvrtc_prelude.h - pre-included before every kernel source that NVRTC compiles (the cuda
// backend's RawModule and the NVRTC checks), as cudasim.h is on the cudasim backend.
//
// NVRTC installed from PyPI has no C headers (no <cfloat>, <cmath>), so the constants a
// kernel may use are defined here, each only if nothing defined it before. They are not
// constant expressions on the GPU (they are on cudasim): use them in code, not in
// constexpr initialisers.
#pragma once
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
#ifndef FLT_MAX
#define FLT_MAX 3.402823466e+38f
#endif
#ifndef FLT_MIN
#define FLT_MIN 1.175494351e-38f
#endif
#ifndef FLT_EPSILON
#define FLT_EPSILON 1.192092896e-07f
#endif
#ifndef INT_MAX
#define INT_MAX 2147483647
#endif
