#pragma once
// All of heed/attention/.
