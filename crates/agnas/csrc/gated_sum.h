// The CPU kernels of the fused gated sum (gated_sum_kernels.cpp), compiled once per instruction set; gated_sum.cpp
// picks one at run time, as ATen's own dispatch does, so that one binary runs on any x86-64 CPU.
#pragma once

#include <c10/util/BFloat16.h>

#include <cstdint>

namespace agnas_gated {

// A dense (B, C, H, W) tensor, either NCHW-contiguous or channels-last-contiguous; every operand of one call has
// the same sizes and layout, and the gates are contiguous (B, C).
struct Shape {
  int64_t batch;
  int64_t channels;
  int64_t spatial;
  bool channels_last;
};

// The kernels of one instruction set: `out = base + Σₖ gₖ ⊙ yₖ` (without `base` when it is null), and its backward,
// which writes `grad ⊙ gₖ` into every non-null `grad_ys[k]` and `Σ_hw grad ⊙ yₖ` into every non-null `grad_gs[k]`.
// The gates (and their gradients) are of type G, which is also the type every sum is taken in: T itself for fp32
// and fp64, fp32 for bf16 maps, so that a mixed-precision run rounds each output once.
template <typename T, typename G = T>
struct Kernels {
  void (*forward)(const Shape&, const T* base, const T* const* ys, const G* const* gs, int n, T* out);
  void (*backward)(const Shape&, const T* grad, const T* const* ys, const G* const* gs, int n, T* const* grad_ys,
                   G* const* grad_gs);
};

#define AGNAS_GATED_DECLARE(cap)                             \
  namespace cap {                                            \
  extern const Kernels<float> kernels_f32;                   \
  extern const Kernels<double> kernels_f64;                  \
  extern const Kernels<c10::BFloat16, float> kernels_bf16;   \
  }
AGNAS_GATED_DECLARE(DEFAULT)
AGNAS_GATED_DECLARE(AVX2)
AGNAS_GATED_DECLARE(AVX512)
#undef AGNAS_GATED_DECLARE

// The most terms one call takes (the kernels keep one accumulator per term); more fall back to the composed ops.
constexpr int kMaxTerms = 16;

}  // namespace agnas_gated
