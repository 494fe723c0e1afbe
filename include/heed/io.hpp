#pragma once
// All of heed/io/.
