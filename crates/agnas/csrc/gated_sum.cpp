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

template <typename T, typename G>
const Kernels<T, G>& kernels();

#define AGNAS_GATED_PICK(T, G, name)              \
  template <>                                     \
  const Kernels<T, G>& kernels<T, G>() {          \
    switch (isa()) {                              \
      case Isa::Avx512:                           \
        return agnas_gated::AVX512::name;         \
      case Isa::Avx2:                             \
        return agnas_gated::AVX2::name;           \
      default:                                    \
        return agnas_gated::DEFAULT::name;        \
    }                                             \
  }
AGNAS_GATED_PICK(float, float, kernels_f32)
AGNAS_GATED_PICK(double, double, kernels_f64)
AGNAS_GATED_PICK(c10::BFloat16, float, kernels_bf16)
#undef AGNAS_GATED_PICK

// The one table of what the kernels take: calls `f(T{}, G{})` with the map and gate types (the gates' type is the
// one the sums are taken in) for maps of type `maps` and returns true, or returns false where no kernel takes them.
template <typename F>
bool dispatch(at::ScalarType maps, F&& f) {
  switch (maps) {
    case at::kFloat:
      f(float{}, float{});
      return true;
    case at::kDouble:
      f(double{}, double{});
      return true;
    case at::kBFloat16:
      f(c10::BFloat16{}, float{});
      return true;
    default:
      return false;
  }
}

// The gates' type for maps of type `maps`; undefined where no kernel takes them.
std::optional<at::ScalarType> gate_type(at::ScalarType maps) {
  std::optional<at::ScalarType> gates;
  dispatch(maps, [&](auto, auto gate_tag) { gates = c10::CppTypeToScalarType<decltype(gate_tag)>::value; });
  return gates;
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
    const bool taken = dispatch(out.scalar_type(), [&](auto map_tag, auto gate_tag) {
      using T = decltype(map_tag);
      using G = decltype(gate_tag);
      const T* b = base.has_value() ? base->const_data_ptr<T>() : nullptr;
      kernels<T, G>().forward(s, b, pointers<T>(values).data(), pointers<G>(gs).data(), n, out.mutable_data_ptr<T>());
    });
    TORCH_CHECK(taken, "agnas_gated_sum: no kernel for ", out.scalar_type());
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
    const bool taken = dispatch(ys[0].scalar_type(), [&](auto map_tag, auto gate_tag) {
      using T = decltype(map_tag);
      using G = decltype(gate_tag);
      kernels<T, G>().backward(s, g.const_data_ptr<T>(), pointers<T>(ys).data(), pointers<G>(gs).data(), n,
                               mutable_pointers<T>(grad_ys).data(), mutable_pointers<G>(grad_gs).data());
    });
    TORCH_CHECK(taken, "agnas_gated_sum: no kernel for ", ys[0].scalar_type());
    for (int k = 0; k < n; ++k) {
      out[1 + k] = grad_ys[k];
      out[1 + n + k] = grad_gs[k];
    }
    return out;
  }
};

// The sum over the pixels of a reduced-precision (B, C, H, W) map, for the SE squeeze: ATen's own sum forward, and a
// backward that writes the broadcast gradient out in the map's layout. Autograd adds it to the map's other gradient
// (the gated sum's), and adding a dense bf16 tensor runs about 3× faster than adding the broadcast view that `sum`'s
// own backward gives (ATen's bf16 loop over a broadcast operand pays per run of C channels, which is short here).
struct PixelSum : public torch::autograd::Function<PixelSum> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    ctx->saved_data["channels_last"] = x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
    return at::sum(x, {2, 3}, false, x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const bool channels_last = ctx->saved_data["channels_last"].toBool();
    if (!grads[0].defined()) {
      return {at::Tensor()};
    }
    return {grads[0].view({sizes[0], sizes[1], 1, 1}).expand(sizes).contiguous(format(channels_last))};
  }
};

// Whether the kernels take these operands, and in which layout: CPU, maps all fp32, fp64 or bf16 with gates of
// `gate_type` (fp32 for bf16 maps), every (B, C, H, W) operand of one size and all NCHW- or all
// channels-last-contiguous, gates (B, C).
std::optional<bool> layout_taken(const at::Tensor* base, const std::vector<at::Tensor>& ys,
                                 const std::vector<at::Tensor>& gates) {
  const at::Tensor& first = ys[0];
  const auto dtype = first.scalar_type();
  const std::optional<at::ScalarType> gate_dtype = gate_type(dtype);
  if (first.dim() != 4 || !first.device().is_cpu() || !gate_dtype.has_value()) {
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
    if (!g.device().is_cpu() || g.scalar_type() != *gate_dtype || g.dim() != 2 || g.size(0) != first.size(0) ||
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

// Returns what `body` returns; 1, with a malloc'd *err, if libtorch threw.
template <typename F>
int guarded(char** err, F&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("unknown C++ exception");
  }
  return 1;
}

}  // namespace

extern "C" {

void agnas_gated_sum_free_message(char* message) {
  std::free(message);
}

// Sets *out to the sum over the pixels of the (B, C, H, W) map *x (PixelSum) and returns 0; returns 1 with a
// malloc'd *err if libtorch threw.
int agnas_pixel_sum(const at::Tensor* x, at::Tensor** out, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(x->dim() == 4, "agnas_pixel_sum: a (B, C, H, W) map, not ", x->sizes());
    *out = new at::Tensor(PixelSum::apply(*x));
    return 0;
  });
}

// Sets *out to a new tensor base + Σₖ gates[k] ⊙ ys[k] (base may be null) and returns 0; returns 2, touching
// nothing, where the kernels do not take the operands; returns 1 with a malloc'd *err if libtorch threw.
int agnas_gated_sum(const at::Tensor* base, const at::Tensor* const* ys, const at::Tensor* const* gates, int n,
                    at::Tensor** out, char** err) {
  return guarded(err, [&] {
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
  });
}

}  // extern "C"
