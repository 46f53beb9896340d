// Elementwise float functions written with arithmetic and bit operations only, so that the
// compiler vectorizes the loops that call them (libm's expf is a call per element).
// Shared by candidates.cpp and fused_step.cpp. torch's extension loader hashes the .cpp sources,
// not this header: a change here needs a new extension name (native/__init__.py).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace fairseq_lrn_native {

// exp(x) for x <= 0, within ~2 ulp (Cephes' expf polynomial); written with arithmetic and bit
// operations only, so that the compiler vectorizes the loops that call it.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// The logistic sigmoid 1 / (1 + exp(-x)), from exp_nonpositive(-|x|) on both sides of zero
// (no overflow for any x; within a few ulp).
inline float sigmoid(float x) {
  const float e = exp_nonpositive(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

}  // namespace fairseq_lrn_native
