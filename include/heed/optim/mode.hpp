#pragma once
// Whether a monitored metric should go down (a loss) or up (an accuracy); shared by
// EarlyStopping and ReduceLROnPlateau (PyTorch's mode="min" / "max").
namespace heed {

enum class Mode { Min, Max };

}  // namespace heed
