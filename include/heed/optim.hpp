#pragma once
// All of heed/optim/.
