#pragma once
// All of heed/metrics/: accuracy, confusion matrix (precision/recall/F1), ROC AUC.
#include "metrics/accuracy.hpp"
#include "metrics/confusion_matrix.hpp"
#include "metrics/roc_auc.hpp"
