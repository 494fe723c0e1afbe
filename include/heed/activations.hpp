#pragma once
// All of heed/activations/.
