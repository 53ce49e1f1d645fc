// The fused gated sum of a decision point as one libtorch autograd function: out = base + Σₖ gₖ ⊙ yₖ, with yₖ and
// base (B, C, H, W) and the gates gₖ (B, C). Forward and backward each pass over memory once, where the composed
// ops (a mul or addcmul_ per term, and per term a broadcast multiply, a product and a reduction in the backward)
// pass once per term and op. The caller (nn/gated.rs) keeps the composed ops for whatever this does not take.
#include "gated_sum.h"

#include <ATen/ATen.h>
#include <ATen/Version.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using agnas_gated::Kernels;
using agnas_gated::Shape;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ATen's own choice (the CPU's widest set, or the ATEN_CPU_CAPABILITY override), so that the fused path rounds as
// the libtorch kernels it replaces do: addcmul_ fuses its multiply-add exactly where ATen runs an FMA build.
enum class Isa { Default, Avx2, Avx512 };

Isa isa() {
  static const Isa chosen = [] {
    const std::string name = at::get_cpu_capability();
    if (name == "AVX512") {
      return Isa::Avx512;
    }
    return name == "AVX2" ? Isa::Avx2 : Isa::Default;
  }();
  return chosen;
}

template <typename T>
const Kernels<T>& kernels();

template <>
const Kernels<float>& kernels<float>() {
  switch (isa()) {
    case Isa::Avx512:
      return agnas_gated::AVX512::kernels_f32;
    case Isa::Avx2:
      return agnas_gated::AVX2::kernels_f32;
    default:
      return agnas_gated::DEFAULT::kernels_f32;
  }
}

template <>
const Kernels<double>& kernels<double>() {
  switch (isa()) {
    case Isa::Avx512:
      return agnas_gated::AVX512::kernels_f64;
    case Isa::Avx2:
      return agnas_gated::AVX2::kernels_f64;
    default:
      return agnas_gated::DEFAULT::kernels_f64;
  }
}

at::MemoryFormat format(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

Shape shape_of(const at::Tensor& y, bool channels_last) {
  return Shape{y.size(0), y.size(1), y.size(2) * y.size(3), channels_last};
}

template <typename T>
std::vector<const T*> pointers(const std::vector<at::Tensor>& tensors) {
  std::vector<const T*> out;
  out.reserve(tensors.size());
  for (const auto& t : tensors) {
    out.push_back(t.const_data_ptr<T>());
  }
  return out;
}

template <typename T>
std::vector<T*> mutable_pointers(const std::vector<at::Tensor>& tensors) {
  std::vector<T*> out;
  out.reserve(tensors.size());
  for (const auto& t : tensors) {
    out.push_back(t.defined() ? t.mutable_data_ptr<T>() : nullptr);
  }
  return out;
}

struct GatedSum : public torch::autograd::Function<GatedSum> {
  static at::Tensor forward(AutogradContext* ctx, const std::optional<at::Tensor>& base, at::TensorList ys,
                            at::TensorList gates, bool channels_last) {
    const int n = static_cast<int>(ys.size());
    std::vector<at::Tensor> values(ys.begin(), ys.end());
    std::vector<at::Tensor> gs;
    gs.reserve(n);
    for (const auto& g : gates) {
      gs.push_back(g.contiguous());
    }
    const Shape s = shape_of(ys[0], channels_last);
    at::Tensor out = at::empty(ys[0].sizes(), ys[0].options().memory_format(format(channels_last)));
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "agnas_gated_sum", [&] {
      const scalar_t* b = base.has_value() ? base->const_data_ptr<scalar_t>() : nullptr;
      kernels<scalar_t>().forward(s, b, pointers<scalar_t>(values).data(), pointers<scalar_t>(gs).data(), n,
                                  out.mutable_data_ptr<scalar_t>());
    });
    std::vector<at::Tensor> saved = values;
    saved.insert(saved.end(), gs.begin(), gs.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["base"] = base.has_value();
    ctx->saved_data["channels_last"] = channels_last;
    return out;
  }

  // One gradient per forward argument, in order: base, every yₖ, every gₖ (the flag has none).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const int n = static_cast<int>(saved.size() / 2);
    const bool has_base = ctx->saved_data["base"].toBool();
    const bool channels_last = ctx->saved_data["channels_last"].toBool();
    variable_list out(1 + 2 * n + 1);
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) {
      return out;
    }
    // needs_input_grad counts the tensors that were passed, so base shifts the others when present.
    const size_t first = has_base ? 1 : 0;
    if (has_base) {
      out[0] = grad;
    }
    const at::Tensor g = grad.contiguous(format(channels_last));
    std::vector<at::Tensor> ys(saved.begin(), saved.begin() + n);
    std::vector<at::Tensor> gs(saved.begin() + n, saved.end());
    std::vector<at::Tensor> grad_ys(n);
    std::vector<at::Tensor> grad_gs(n);
    for (int k = 0; k < n; ++k) {
      if (ctx->needs_input_grad(first + k)) {
        grad_ys[k] = at::empty(ys[k].sizes(), ys[k].options().memory_format(format(channels_last)));
      }
      if (ctx->needs_input_grad(first + n + k)) {
        grad_gs[k] = at::empty(gs[k].sizes(), gs[k].options());
      }
    }
    const Shape s = shape_of(ys[0], channels_last);
    AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "agnas_gated_sum_backward", [&] {
      kernels<scalar_t>().backward(s, g.const_data_ptr<scalar_t>(), pointers<scalar_t>(ys).data(),
                                   pointers<scalar_t>(gs).data(), n, mutable_pointers<scalar_t>(grad_ys).data(),
                                   mutable_pointers<scalar_t>(grad_gs).data());
    });
    for (int k = 0; k < n; ++k) {
      out[1 + k] = grad_ys[k];
      out[1 + n + k] = grad_gs[k];
    }
    return out;
  }
};

// Whether the kernels take these operands, and in which layout: CPU, fp32 or fp64 throughout, every (B, C, H, W)
// operand of one size and all NCHW- or all channels-last-contiguous, gates (B, C).
std::optional<bool> layout_taken(const at::Tensor* base, const std::vector<at::Tensor>& ys,
                                 const std::vector<at::Tensor>& gates) {
  const at::Tensor& first = ys[0];
  const auto dtype = first.scalar_type();
  if (first.dim() != 4 || !first.device().is_cpu() || (dtype != at::kFloat && dtype != at::kDouble)) {
    return std::nullopt;
  }
  std::vector<const at::Tensor*> big;
  for (const auto& y : ys) {
    big.push_back(&y);
  }
  if (base != nullptr) {
    big.push_back(base);
  }
  for (const auto* t : big) {
    if (!t->device().is_cpu() || t->scalar_type() != dtype || t->sizes() != first.sizes()) {
      return std::nullopt;
    }
  }
  for (const auto& g : gates) {
    if (!g.device().is_cpu() || g.scalar_type() != dtype || g.dim() != 2 || g.size(0) != first.size(0) ||
        g.size(1) != first.size(1)) {
      return std::nullopt;
    }
  }
  for (const bool channels_last : {false, true}) {
    bool all = true;
    for (const auto* t : big) {
      all = all && t->is_contiguous(format(channels_last));
    }
    if (all) {
      return channels_last;
    }
  }
  return std::nullopt;
}

char* copy_message(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.c_str(), message.size() + 1);
  }
  return out;
}

}  // namespace

extern "C" {

void agnas_gated_sum_free_message(char* message) {
  std::free(message);
}

// Sets *out to a new tensor base + Σₖ gates[k] ⊙ ys[k] (base may be null) and returns 0; returns 2, touching
// nothing, where the kernels do not take the operands; returns 1 with a malloc'd *err if libtorch threw.
int agnas_gated_sum(const at::Tensor* base, const at::Tensor* const* ys, const at::Tensor* const* gates, int n,
                    at::Tensor** out, char** err) {
  try {
    if (n < 1 || n > agnas_gated::kMaxTerms) {
      return 2;
    }
    std::vector<at::Tensor> values;
    std::vector<at::Tensor> gs;
    for (int k = 0; k < n; ++k) {
      values.push_back(*ys[k]);
      gs.push_back(*gates[k]);
    }
    const std::optional<bool> channels_last = layout_taken(base, values, gs);
    if (!channels_last.has_value()) {
      return 2;
    }
    const std::optional<at::Tensor> b = base != nullptr ? std::optional<at::Tensor>(*base) : std::nullopt;
    *out = new at::Tensor(GatedSum::apply(b, at::TensorList(values), at::TensorList(gs), *channels_last));
    return 0;
  } catch (const c10::Error& e) {
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("unknown C++ exception");
  }
  return 1;
}

}  // extern "C"
