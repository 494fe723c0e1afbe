#pragma once
// Training guard: stop at the first non-finite loss or gradient, saying where it appeared.
//
//   const float loss = criterion.forward(model.forward(x), y);
//   model.backward(criterion.backward());
//   heed::check_finite(loss, model.parameters(), step);   // throws NumericError
//   optimizer.step();
//
// Called before step(), so the weights (and the last checkpoint) are still the good ones.
// Gradients are scanned in backward order (last parameter first), the order in which they were
// produced, so the message names the module where the problem first showed up.
//
// Adam, AdamW and RMSprop also guard themselves: their step() throws NumericError, changing
// nothing, for a NaN or inf gradient and for a finite spike whose square would overflow a
// second moment (|g| > ~1.8e19 in float). SGD does not (it keeps no squares); this guard covers
// it and the loss. For spikes, the remedy is heed::clip_grad_norm_ between backward and step():
// it clips even a norm whose sum of squares overflows. Or catch the error and skip the batch.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/module.hpp"

namespace heed {

template <typename T>
void check_finite(T loss, const std::vector<Parameter<T>>& params, std::int64_t step) {
  if (!std::isfinite(static_cast<double>(loss)))
    throw NumericError("training step " + std::to_string(step) + ": loss is " +
                       std::to_string(static_cast<double>(loss)) +
                       "; stopped before the update, weights are those of the previous step");
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (!it->grad->allFinite())
      throw NumericError("training step " + std::to_string(step) + ": non-finite gradient in '" +
                         it->name + "'; stopped before the update, weights are those of the previous step");
}

}  // namespace heed
