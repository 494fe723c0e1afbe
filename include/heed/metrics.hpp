#pragma once
// All of heed/metrics/.
