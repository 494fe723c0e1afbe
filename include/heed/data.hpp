#pragma once
// All of heed/data/.
