// The fused gated sum's CPU kernels, compiled once per instruction set (build.rs defines CPU_CAPABILITY and
// CPU_CAPABILITY_<name> with that set's flags, as ATen does, so that at::vec is as wide as the set allows).
//
// Rounding follows the composed ops exactly: libtorch's `mul` makes the first term and its `addcmul_` adds the
// next ones, which on FMA builds (AVX2, AVX-512) rounds once, as at::vec::fmadd does, and in the DEFAULT build twice
// (this file is compiled with -ffp-contract=off, so fmadd stays `a * b + c` there). Only the gates' gradients sum
// in another order than libtorch's reduction.
#include "gated_sum.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>

namespace agnas_gated {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Enough elements per task that a parallel region pays for itself (ATen's TensorIterator grain).
constexpr int64_t kGrain = 32768;

// Loads and stores `count` (at most one vector of G) elements of a map of type T as a vector of G, the type the
// sums are taken in: as they are where T is G, widened to fp32 and rounded back to nearest-even for bf16 maps.
template <typename T, typename G>
struct Io {
  static Vectorized<G> load(const T* p, int count) {
    return Vectorized<G>::loadu(p, count);
  }
  static void store(const Vectorized<G>& v, T* p, int count) {
    v.store(p, count);
  }
};

template <>
struct Io<c10::BFloat16, float> {
  static Vectorized<float> load(const c10::BFloat16* p, int count) {
    Vectorized<float> out;
    if (count == Vectorized<float>::size()) {
      at::vec::load_fp32_from_bf16(p, out);
    } else {
      c10::BFloat16 tail[Vectorized<float>::size()] = {};
      std::copy(p, p + count, tail);
      at::vec::load_fp32_from_bf16(tail, out);
    }
    return out;
  }
  static void store(const Vectorized<float>& v, c10::BFloat16* p, int count) {
    at::vec::convert_from_float<c10::BFloat16>(v, v).store(p, count);
  }
};

template <typename T, typename G>
void forward_nchw(const Shape& s, const T* base, const T* const* ys, const G* const* gs, int n, T* out) {
  using Vec = Vectorized<G>;
  using In = Io<T, G>;
  const int64_t hw = s.spatial;
  at::parallel_for(0, s.batch * s.channels, std::max<int64_t>(1, kGrain / hw), [&](int64_t begin, int64_t end) {
    Vec gate[kMaxTerms];
    for (int64_t plane = begin; plane < end; ++plane) {
      for (int k = 0; k < n; ++k) {
        gate[k] = Vec(gs[k][plane]);
      }
      const int64_t at = plane * hw;
      for (int64_t i = 0; i < hw; i += Vec::size()) {
        const int count = static_cast<int>(std::min<int64_t>(Vec::size(), hw - i));
        Vec acc = base != nullptr ? In::load(base + at + i, count) : In::load(ys[0] + at + i, count) * gate[0];
        for (int k = base != nullptr ? 0 : 1; k < n; ++k) {
          acc = at::vec::fmadd(In::load(ys[k] + at + i, count), gate[k], acc);
        }
        In::store(acc, out + at + i, count);
      }
    }
  });
}

template <typename T, typename G>
void forward_channels_last(const Shape& s, const T* base, const T* const* ys, const G* const* gs, int n,
                           T* out) {
  using Vec = Vectorized<G>;
  using In = Io<T, G>;
  const int64_t c = s.channels;
  at::parallel_for(0, s.batch * s.spatial, std::max<int64_t>(1, kGrain / c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t at = row * c;
      const int64_t gate_at = row / s.spatial * c;
      for (int64_t j = 0; j < c; j += Vec::size()) {
        const int count = static_cast<int>(std::min<int64_t>(Vec::size(), c - j));
        Vec acc = base != nullptr ? In::load(base + at + j, count)
                                  : In::load(ys[0] + at + j, count) * Vec::loadu(gs[0] + gate_at + j, count);
        for (int k = base != nullptr ? 0 : 1; k < n; ++k) {
          acc = at::vec::fmadd(In::load(ys[k] + at + j, count), Vec::loadu(gs[k] + gate_at + j, count), acc);
        }
        In::store(acc, out + at + j, count);
      }
    }
  });
}

template <typename T, typename G>
void backward_nchw(const Shape& s, const T* grad, const T* const* ys, const G* const* gs, int n, T* const* grad_ys,
                   G* const* grad_gs) {
  using Vec = Vectorized<G>;
  using In = Io<T, G>;
  const int64_t hw = s.spatial;
  at::parallel_for(0, s.batch * s.channels, std::max<int64_t>(1, kGrain / hw), [&](int64_t begin, int64_t end) {
    Vec gate[kMaxTerms];
    Vec acc[kMaxTerms];
    for (int64_t plane = begin; plane < end; ++plane) {
      for (int k = 0; k < n; ++k) {
        gate[k] = Vec(gs[k][plane]);
        acc[k] = Vec(G(0));
      }
      const int64_t at = plane * hw;
      for (int64_t i = 0; i < hw; i += Vec::size()) {
        const int count = static_cast<int>(std::min<int64_t>(Vec::size(), hw - i));
        const Vec g = In::load(grad + at + i, count);
        for (int k = 0; k < n; ++k) {
          if (grad_ys[k] != nullptr) {
            In::store(g * gate[k], grad_ys[k] + at + i, count);
          }
          if (grad_gs[k] != nullptr) {
            acc[k] = at::vec::fmadd(g, In::load(ys[k] + at + i, count), acc[k]);
          }
        }
      }
      for (int k = 0; k < n; ++k) {
        if (grad_gs[k] != nullptr) {
          G lanes[Vec::size()];
          acc[k].store(lanes);
          G total = 0;
          for (int l = 0; l < Vec::size(); ++l) {
            total += lanes[l];
          }
          grad_gs[k][plane] = total;
        }
      }
    }
  });
}

// One task per (image, run of channels one vector wide): the gates' gradients of that run stay in registers while
// the task walks the image's pixels.
template <typename T, typename G>
void backward_channels_last(const Shape& s, const T* grad, const T* const* ys, const G* const* gs, int n,
                            T* const* grad_ys, G* const* grad_gs) {
  using Vec = Vectorized<G>;
  using In = Io<T, G>;
  const int64_t c = s.channels;
  const int64_t runs = (c + Vec::size() - 1) / Vec::size();
  const int64_t grain = std::max<int64_t>(1, kGrain / (s.spatial * Vec::size()));
  at::parallel_for(0, s.batch * runs, grain, [&](int64_t begin, int64_t end) {
    Vec gate[kMaxTerms];
    Vec acc[kMaxTerms];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / runs;
      const int64_t j = task % runs * Vec::size();
      const int count = static_cast<int>(std::min<int64_t>(Vec::size(), c - j));
      for (int k = 0; k < n; ++k) {
        gate[k] = Vec::loadu(gs[k] + b * c + j, count);
        acc[k] = Vec(G(0));
      }
      for (int64_t p = 0; p < s.spatial; ++p) {
        const int64_t at = (b * s.spatial + p) * c + j;
        const Vec g = In::load(grad + at, count);
        for (int k = 0; k < n; ++k) {
          if (grad_ys[k] != nullptr) {
            In::store(g * gate[k], grad_ys[k] + at, count);
          }
          if (grad_gs[k] != nullptr) {
            acc[k] = at::vec::fmadd(g, In::load(ys[k] + at, count), acc[k]);
          }
        }
      }
      for (int k = 0; k < n; ++k) {
        if (grad_gs[k] != nullptr) {
          acc[k].store(grad_gs[k] + b * c + j, count);
        }
      }
    }
  });
}

template <typename T, typename G>
void forward(const Shape& s, const T* base, const T* const* ys, const G* const* gs, int n, T* out) {
  if (s.channels_last) {
    forward_channels_last(s, base, ys, gs, n, out);
  } else {
    forward_nchw(s, base, ys, gs, n, out);
  }
}

template <typename T, typename G>
void backward(const Shape& s, const T* grad, const T* const* ys, const G* const* gs, int n, T* const* grad_ys,
              G* const* grad_gs) {
  if (s.channels_last) {
    backward_channels_last(s, grad, ys, gs, n, grad_ys, grad_gs);
  } else {
    backward_nchw(s, grad, ys, gs, n, grad_ys, grad_gs);
  }
}

}  // namespace

const Kernels<float> kernels_f32{forward<float, float>, backward<float, float>};
const Kernels<double> kernels_f64{forward<double, double>, backward<double, double>};
const Kernels<c10::BFloat16, float> kernels_bf16{forward<c10::BFloat16, float>, backward<c10::BFloat16, float>};

}  // namespace CPU_CAPABILITY
}  // namespace agnas_gated
