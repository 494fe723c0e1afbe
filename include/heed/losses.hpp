#pragma once
// All of heed/losses/.
