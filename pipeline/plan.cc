#include "pipeline/plan.h"

#include <initializer_list>

namespace polaris::pipeline {
namespace {

// The plans were tuned on the Fashion-MNIST reference CNN (pipeline/README.md records the
// measured results). Structured pruning comes first because it shrinks every later stage's
// work and because only a float model can be fine-tuned; quantization comes last.

proto::StageConfig Pruning(double fraction, std::initializer_list<double> fallbacks,
                           int epochs) {
  proto::StageConfig stage;
  proto::StructuredPruningStage* pruning = stage.mutable_structured_pruning();
  pruning->mutable_pruning()->set_criterion(proto::PRUNING_CRITERION_L1);
  pruning->mutable_pruning()->set_fraction(fraction);
  for (double fallback : fallbacks) pruning->add_fallback_fractions(fallback);
  proto::FineTuneConfig* fine_tune = pruning->mutable_fine_tune();
  fine_tune->set_epochs(epochs);
  // A fifth of the reference recipe's rate: the pruned network starts from trained weights.
  fine_tune->set_learning_rate(0.02);
  return stage;
}

proto::QuantizationConfig StaticInt8() {
  proto::QuantizationConfig config;
  config.set_method(proto::QuantizationConfig::STATIC);
  config.mutable_activation_calibration()->set_method(
      proto::QuantizationConfig::Calibration::MSE);
  return config;
}

proto::QuantizationConfig Qat() {
  proto::QuantizationConfig config;
  config.set_method(proto::QuantizationConfig::QAT);
  config.mutable_qat()->set_epochs(1);
  return config;
}

proto::QuantizationConfig MixedPrecision() {
  proto::QuantizationConfig config;
  config.set_method(proto::QuantizationConfig::MIXED_PRECISION);
  return config;
}

// Static int8, falling back to QAT when calibration alone loses too much accuracy.
proto::StageConfig Int8() {
  proto::StageConfig stage;
  *stage.mutable_quantization()->mutable_quantization() = StaticInt8();
  *stage.mutable_quantization()->add_fallbacks() = Qat();
  return stage;
}

// Mixed precision (int4 where a layer tolerates it) under `fraction` of the float32 weight
// bytes, falling back to static int8 everywhere.
proto::StageConfig Mixed(double fraction) {
  proto::StageConfig stage;
  proto::QuantizationStage* quantization = stage.mutable_quantization();
  *quantization->mutable_quantization() = MixedPrecision();
  quantization->set_max_weight_fraction(fraction);
  *quantization->add_fallbacks() = StaticInt8();
  return stage;
}

}  // namespace

double DefaultAccuracyBudget(proto::Target target) {
  switch (target) {
    case proto::ACCURACY: return 0.2;
    case proto::BALANCED: return 1.0;
    case proto::SPEED: return 2.0;
    case proto::MEMORY: return 1.5;
    case proto::EXTREME: return 3.0;
    default: return 1.0;
  }
}

std::vector<proto::StageConfig> DefaultPlan(proto::Target target) {
  switch (target) {
    case proto::ACCURACY:
      // No pruning: int8 alone, with QAT when calibration is not enough.
      return {Int8()};
    case proto::SPEED:
      return {Pruning(0.75, {0.625, 0.5}, 3), Int8()};
    case proto::MEMORY:
      return {Pruning(0.5, {0.375, 0.25}, 2), Mixed(0.22)};
    case proto::EXTREME:
      return {Pruning(0.75, {0.625, 0.5}, 3), Mixed(0.22)};
    case proto::BALANCED:
    default:
      // 62.5% rather than 50%: int8 layers cost about 16 us each at batch 1 whatever their
      // width, so only a thinner network keeps batch 1 clearly faster than optimized fp32.
      return {Pruning(0.625, {0.5, 0.375}, 2), Int8()};
  }
}

}  // namespace polaris::pipeline
