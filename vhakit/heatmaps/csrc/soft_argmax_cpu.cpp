// Fused CPU 3D soft-argmax for vhakit.heatmaps (built on first use by vhakit/kernels.py).
//
// For each heatmap x (Gx, Gy, Gz) of float32 logits, p = softmax(beta x) over all voxels and the
// expected centred voxel offset E_p[(i - (Gx-1)/2, j - (Gy-1)/2, k - (Gz-1)/2)].
//
// Why a kernel: torch's softmax writes p (one float per voxel) and the marginal sums read it back
// twice, so the pure-torch path streams every voxel ~4 times. Here the forward reads the logits
// twice (max, then exp + marginal sums) and writes nothing per voxel; the backward reads them once
// and writes the gradient once. Both exponentiate each voxel exactly once.
//
// Precision: float32 exponentials (at::vec exp_u20: <= 20 ulp, ~1e-6 relative; the tests bound the
// coordinates to 1e-6 m against a float64 loop), per-row sums in float32, marginals
// and moments accumulated in float64.

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

using Vec = at::vec::Vectorized<float>;

void check_logits(const torch::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 4 &&
                  x.is_contiguous(),
              "vhakit soft_argmax kernel: expected contiguous float32 CPU logits (R, Gx, Gy, Gz), "
              "got ", x.scalar_type(), " ", x.sizes());
}

float heatmap_max(const float* h, int64_t m) {
  Vec acc(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + Vec::size() <= m; i += Vec::size()) acc = at::vec::maximum(acc, Vec::loadu(h + i));
  float best = at::vec::vec_reduce_all<float>(
      [](Vec& a, Vec& b) { return at::vec::maximum(a, b); }, acc);
  for (; i < m; ++i) best = (std::isnan(h[i]) || h[i] > best) ? h[i] : best;
  return best;
}

// One x-slab (Gy rows of NV * Vec::size() voxels): exp(b x - m) summed per row (-> my, mx) and per
// z lane in registers (-> slab_z), for the common case Gz = NV SIMD vectors.
template <int NV>
void slab_fixed(const float* slab, int64_t gy, const Vec& vb, const Vec& vnm, double& mx_i,
                double* my, float* slab_z) {
  Vec zacc[NV];
  for (int v = 0; v < NV; ++v) zacc[v] = Vec(0.f);
  double sx = 0;
  for (int64_t j = 0; j < gy; ++j) {
    const float* row = slab + j * NV * Vec::size();
    Vec vs(0.f);
    for (int v = 0; v < NV; ++v) {
      const Vec e = at::vec::fmadd(Vec::loadu(row + v * Vec::size()), vb, vnm).exp_u20();
      vs = vs + e;
      zacc[v] = zacc[v] + e;
    }
    const double s = at::vec::vec_reduce_all<float>([](Vec& a, Vec& c) { return a + c; }, vs);
    my[j] += s;
    sx += s;
  }
  mx_i += sx;
  for (int v = 0; v < NV; ++v) zacc[v].store(slab_z + v * Vec::size());
}

using SlabFn = void (*)(const float*, int64_t, const Vec&, const Vec&, double&, double*, float*);

SlabFn slab_fn(int64_t gz) {
  if (gz % Vec::size() != 0) return nullptr;
  switch (gz / Vec::size()) {
    case 1: return &slab_fixed<1>;
    case 2: return &slab_fixed<2>;
    case 3: return &slab_fixed<3>;
    case 4: return &slab_fixed<4>;
    case 5: return &slab_fixed<5>;
    case 6: return &slab_fixed<6>;
    case 7: return &slab_fixed<7>;
    case 8: return &slab_fixed<8>;
    default: return nullptr;
  }
}

}  // namespace

// x: (R, Gx, Gy, Gz) -> [offsets (R, 3) in voxels, lse (R,) = logsumexp(beta x)].
std::vector<torch::Tensor> soft_argmax_forward(torch::Tensor x, double beta) {
  check_logits(x);
  const int64_t R = x.size(0), gx = x.size(1), gy = x.size(2), gz = x.size(3);
  const int64_t M = gx * gy * gz;
  auto out = torch::empty({R, 3}, x.options());
  auto lse = torch::empty({R}, x.options());
  const float* px = x.data_ptr<float>();
  float* po = out.data_ptr<float>();
  float* pl = lse.data_ptr<float>();
  const float b = static_cast<float>(beta);
  const SlabFn fixed = slab_fn(gz);  // the register path when Gz is whole SIMD vectors
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> slab_z(gz);
    std::vector<double> mx(gx), my(gy), mz(gz);
    for (int64_t r = r0; r < r1; ++r) {
      const float* h = px + r * M;
      const float m = b * heatmap_max(h, M);  // beta > 0: max(beta x) = beta max(x)
      std::fill(mx.begin(), mx.end(), 0.0);
      std::fill(my.begin(), my.end(), 0.0);
      std::fill(mz.begin(), mz.end(), 0.0);
      const Vec vb(b), vm(m), vnm(-m);
      for (int64_t i = 0; i < gx; ++i) {
        if (fixed) {
          fixed(h + i * gy * gz, gy, vb, vnm, mx[i], my.data(), slab_z.data());
          for (int64_t k = 0; k < gz; ++k) mz[k] += slab_z[k];
          continue;
        }
        std::fill(slab_z.begin(), slab_z.end(), 0.f);  // z-marginal of this x-slab (float32)
        for (int64_t j = 0; j < gy; ++j) {
          const float* row = h + (i * gy + j) * gz;
          Vec vs(0.f);
          int64_t k = 0;
          for (; k + Vec::size() <= gz; k += Vec::size()) {
            const Vec e = (Vec::loadu(row + k) * vb - vm).exp_u20();
            vs = vs + e;
            (Vec::loadu(slab_z.data() + k) + e).store(slab_z.data() + k);
          }
          float s = at::vec::vec_reduce_all<float>([](Vec& a, Vec& c) { return a + c; }, vs);
          for (; k < gz; ++k) {
            const float e = std::exp(row[k] * b - m);
            s += e;
            slab_z[k] += e;
          }
          mx[i] += s;
          my[j] += s;
        }
        for (int64_t k = 0; k < gz; ++k) mz[k] += slab_z[k];
      }
      double mass = 0, ex = 0, ey = 0, ez = 0;
      for (int64_t i = 0; i < gx; ++i) mass += mx[i], ex += mx[i] * (i - 0.5 * (gx - 1));
      for (int64_t j = 0; j < gy; ++j) ey += my[j] * (j - 0.5 * (gy - 1));
      for (int64_t k = 0; k < gz; ++k) ez += mz[k] * (k - 0.5 * (gz - 1));
      po[3 * r] = static_cast<float>(ex / mass);
      po[3 * r + 1] = static_cast<float>(ey / mass);
      po[3 * r + 2] = static_cast<float>(ez / mass);
      pl[r] = static_cast<float>(m + std::log(mass));
    }
  });
  return {out, lse};
}

// d L / d x_g = beta p_g (grad . X_g - grad . out), p_g = exp(beta x_g - lse); one pass.
torch::Tensor soft_argmax_backward(torch::Tensor x, double beta, torch::Tensor out,
                                   torch::Tensor lse, torch::Tensor grad_out) {
  check_logits(x);
  const int64_t R = x.size(0), gx = x.size(1), gy = x.size(2), gz = x.size(3);
  const int64_t M = gx * gy * gz;
  TORCH_CHECK(out.sizes() == torch::IntArrayRef({R, 3}) && lse.sizes() == torch::IntArrayRef({R}) &&
                  grad_out.sizes() == torch::IntArrayRef({R, 3}),
              "vhakit soft_argmax kernel: out/lse/grad_out shapes do not match the logits");
  auto o = out.to(torch::kFloat32).contiguous();
  auto l = lse.to(torch::kFloat32).contiguous();
  auto g = grad_out.to(torch::kFloat32).contiguous();
  auto grad = torch::empty_like(x);
  const float* px = x.data_ptr<float>();
  const float* po = o.data_ptr<float>();
  const float* pl = l.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  float* pd = grad.data_ptr<float>();
  const float b = static_cast<float>(beta);
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> az(gz);
    for (int64_t r = r0; r < r1; ++r) {
      const float* h = px + r * M;
      float* d = pd + r * M;
      const float g0 = b * pg[3 * r], g1 = b * pg[3 * r + 1], g2 = b * pg[3 * r + 2];
      const float k0 = g0 * po[3 * r] + g1 * po[3 * r + 1] + g2 * po[3 * r + 2];
      for (int64_t k = 0; k < gz; ++k) az[k] = g2 * (k - 0.5f * (gz - 1));
      const Vec vb(b), vl(pl[r]);
      for (int64_t i = 0; i < gx; ++i) {
        const float ai = g0 * (i - 0.5f * (gx - 1)) - k0;
        for (int64_t j = 0; j < gy; ++j) {
          const float aij = ai + g1 * (j - 0.5f * (gy - 1));
          const Vec va(aij);
          const float* row = h + (i * gy + j) * gz;
          float* drow = d + (i * gy + j) * gz;
          int64_t k = 0;
          for (; k + Vec::size() <= gz; k += Vec::size()) {
            const Vec p = (Vec::loadu(row + k) * vb - vl).exp_u20();
            (p * (va + Vec::loadu(az.data() + k))).store(drow + k);
          }
          for (; k < gz; ++k) drow[k] = std::exp(row[k] * b - pl[r]) * (aij + az[k]);
        }
      }
    }
  });
  return grad;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &soft_argmax_forward, "fused 3D soft-argmax, forward (CPU, float32)");
  m.def("backward", &soft_argmax_backward, "fused 3D soft-argmax, backward (CPU, float32)");
}
