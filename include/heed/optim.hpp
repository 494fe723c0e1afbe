#pragma once
// All of heed/optim/: optimizers, lr schedules, gradient clipping, early stopping, finite guard.
#include "optim/mode.hpp"
#include "optim/optimizer.hpp"
#include "optim/sgd.hpp"
#include "optim/adam.hpp"
#include "optim/rmsprop.hpp"
#include "optim/lr_scheduler.hpp"
#include "optim/reduce_lr_on_plateau.hpp"
#include "optim/clip_grad.hpp"
#include "optim/early_stopping.hpp"
#include "optim/finite_guard.hpp"
