#pragma once
// All of heed/layers/.
