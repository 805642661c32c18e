// Runs the optimize command the way a user does: on models scripted and traced in Python, with
// the optimized file checked back in Python, and on every kind of bad input the command must
// reject without writing anything.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/model_io.h"
#include "core/tensor_file.h"
#include "core/testing/python_test_util.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "pipeline/pipeline.pb.h"

namespace polaris::pipeline {
namespace {

constexpr char kOptimize[] = "pipeline/optimize";
constexpr char kModelScript[] = "quantization/testing/make_test_models.py";
constexpr char kBadInputScript[] = "pipeline/testing/make_bad_inputs.py";
constexpr char kOpsLibrary[] = "tools/libpolaris_ops.so";

std::string InTmp(const std::string& name) {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
}

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/polaris/", path);
}

// Runs the command quietly, as bazel run does from the test's temporary directory.
polaris::testing::CommandResult RunOptimize(std::vector<std::string> args) {
  args.insert(args.begin(), "--quiet");
  return polaris::testing::RunInTestDirectory(kOptimize, args);
}

// The lines of `output` that start with "error: ".
std::vector<std::string> ErrorLines(const std::string& output) {
  std::vector<std::string> errors;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StartsWith(line, "error: ")) errors.emplace_back(line);
  }
  return errors;
}

class OptimizeCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const char* saved_as : {"scripted", "traced"}) {
      ASSERT_TRUE(polaris::testing::RunPython(
                      kModelScript, {"odd-cnn", saved_as, InTmp(absl::StrCat(saved_as, ".pt"))})
                      .ok());
    }
    ASSERT_TRUE(
        polaris::testing::RunPython(kModelScript, {"fashion-mnist-test", "512", InTmp("data.pt")})
            .ok());
    ASSERT_TRUE(polaris::testing::RunPython(kBadInputScript, {std::getenv("TEST_TMPDIR")}).ok());
  }

  // Runs the command on bad input and checks the contract: a non-zero exit, exactly one
  // "error: ..." line that contains `expected`, and neither output file on disk.
  static void ExpectRejected(std::vector<std::string> args, const std::string& expected) {
    static int run = 0;
    const std::string out = absl::StrCat("rejected_", ++run, ".pt");
    const std::string report = absl::StrCat("rejected_", run, ".json");
    args.push_back("--out=" + out);
    args.push_back("--report=" + report);
    const polaris::testing::CommandResult result = RunOptimize(args);
    EXPECT_NE(result.exit_code, 0) << result.output;
    const std::vector<std::string> errors = ErrorLines(result.output);
    ASSERT_EQ(errors.size(), 1u) << result.output;
    EXPECT_NE(errors[0].find(expected), std::string::npos) << errors[0];
    EXPECT_FALSE(PathExists(InTmp(out))) << out << " was written";
    EXPECT_FALSE(PathExists(InTmp(report))) << report << " was written";
  }
};

// Optimizes a Python model (residual add, BatchNorm, odd channel counts), then checks that the
// written file loads in Python with polaris's operator library and predicts what C++ predicts.
void OptimizeAndCompareInPython(const std::string& saved_as) {
  const std::string out = absl::StrCat(saved_as, "_optimized.pt");
  const std::string report = absl::StrCat(saved_as, "_report.json");
  const polaris::testing::CommandResult run = RunOptimize(
      {"--model=" + saved_as + ".pt", "--data=data.pt",
       "--config=" + Runfile("pipeline/testing/interop.textproto"), "--out=" + out,
       "--report=" + report, "--threads=2"});
  ASSERT_EQ(run.exit_code, 0) << run.output;

  absl::StatusOr<std::string> json = ReadFileToString(InTmp(report));
  ASSERT_TRUE(json.ok()) << json.status();
  proto::PipelineResult result;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &result).ok()) << *json;
  // Scripted BatchNorm layers branch on `training`; the analysis reads them in eval mode.
  EXPECT_EQ(result.analysis().architecture(), "residual CNN")
      << result.analysis().architecture_reason();
  ASSERT_EQ(result.stages_size(), 2);
  EXPECT_EQ(result.stages(0).status(), proto::StageResult::APPLIED) << result.stages(0).DebugString();
  EXPECT_EQ(result.stages(1).status(), proto::StageResult::APPLIED) << result.stages(1).DebugString();
  EXPECT_GT(result.metrics().compression_ratio(), 1.0);

  absl::StatusOr<torch::jit::Module> model = LoadModel(InTmp(out));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<SavedDataSets> data = LoadSavedDataSets(InTmp("data.pt"));
  ASSERT_TRUE(data.ok()) << data.status();
  at::NoGradGuard no_grad;
  const at::Tensor expected =
      model->forward({data->test.inputs}).toTensor().argmax(1);

  absl::StatusOr<std::string> printed = polaris::testing::RunPython(
      kModelScript, {"predict", InTmp(out), InTmp("data.pt"), Runfile(kOpsLibrary)});
  ASSERT_TRUE(printed.ok()) << printed.status();
  const std::vector<std::string> classes =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(*printed), ' ');
  ASSERT_EQ(static_cast<int64_t>(classes.size()), expected.size(0));
  int64_t mismatches = 0;
  for (size_t i = 0; i < classes.size(); ++i) {
    if (classes[i] != std::to_string(expected[i].item<int64_t>())) ++mismatches;
  }
  // The same file, operators and inputs: Python and C++ must agree on every example.
  EXPECT_EQ(mismatches, 0);
}

TEST_F(OptimizeCommand, ScriptedPythonModelLoadsBackInPython) {
  OptimizeAndCompareInPython("scripted");
}

TEST_F(OptimizeCommand, TracedPythonModelLoadsBackInPython) {
  OptimizeAndCompareInPython("traced");
}

TEST_F(OptimizeCommand, RejectsMissingModel) {
  ExpectRejected({"--model=no_such_model.pt", "--data=data.pt"}, "no_such_model.pt");
}

TEST_F(OptimizeCommand, RejectsTruncatedModel) {
  absl::StatusOr<std::string> bytes = ReadFileToString(InTmp("scripted.pt"));
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(WriteFileAtomically(InTmp("truncated.pt"), bytes->substr(0, bytes->size() / 2)).ok());
  ExpectRejected({"--model=truncated.pt", "--data=data.pt"}, "truncated.pt");
}

TEST_F(OptimizeCommand, RejectsFileThatIsNotTorchScript) {
  ASSERT_TRUE(WriteFileAtomically(InTmp("notes.pt"), "these are not model weights\n").ok());
  ExpectRejected({"--model=notes.pt", "--data=data.pt"}, "notes.pt");
}

TEST_F(OptimizeCommand, RejectsTupleOutput) {
  ExpectRejected({"--model=tuple_output.pt", "--data=data.pt"}, "tensor");
}

TEST_F(OptimizeCommand, RejectsTwoInputs) {
  ExpectRejected({"--model=two_inputs.pt", "--data=data.pt"}, "exactly one tensor");
}

TEST_F(OptimizeCommand, RejectsDataOfTheWrongShape) {
  ExpectRejected({"--model=scripted.pt", "--data=wrong_shape.pt"}, "[1, 20, 20]");
}

TEST_F(OptimizeCommand, RejectsLabelsOutOfRange) {
  ExpectRejected({"--model=scripted.pt", "--data=bad_labels.pt"}, "12");
}

TEST_F(OptimizeCommand, RejectsUnknownTarget) {
  ExpectRejected({"--model=scripted.pt", "--data=data.pt", "--target=fastest"}, "fastest");
}

TEST_F(OptimizeCommand, RejectsUnknownStageName) {
  ASSERT_TRUE(WriteFileAtomically(InTmp("unknown_stage.textproto"),
                                  "stages { distillation { epochs: 1 } }\n")
                  .ok());
  ExpectRejected({"--model=scripted.pt", "--data=data.pt", "--config=unknown_stage.textproto"},
                 "distillation");
}

TEST_F(OptimizeCommand, RejectsMalformedConfig) {
  ASSERT_TRUE(
      WriteFileAtomically(InTmp("malformed.textproto"), "target: BALANCED\nstages {\n").ok());
  ExpectRejected({"--model=scripted.pt", "--data=data.pt", "--config=malformed.textproto"},
                 "malformed.textproto");
}

TEST_F(OptimizeCommand, RejectsTrainingCountMismatch) {
  ExpectRejected({"--model=scripted.pt", "--data=count_mismatch.pt"}, "training data");
}

TEST_F(OptimizeCommand, RejectsPositionalArgument) {
  ExpectRejected({"scripted.pt", "--data=data.pt"}, "unexpected argument 'scripted.pt'");
}

TEST_F(OptimizeCommand, RejectsOutputThatIsADirectory) {
  ASSERT_TRUE(MakeDirectories(InTmp("a_directory")).ok());
  const polaris::testing::CommandResult result =
      RunOptimize({"--model=scripted.pt", "--data=data.pt", "--out=a_directory"});
  EXPECT_NE(result.exit_code, 0);
  const std::vector<std::string> errors = ErrorLines(result.output);
  ASSERT_EQ(errors.size(), 1u) << result.output;
  EXPECT_NE(errors[0].find("is a directory"), std::string::npos) << errors[0];
  // Rejected before any stage ran.
  EXPECT_EQ(result.output.find("[optimize]"), std::string::npos) << result.output;
}

TEST_F(OptimizeCommand, RejectsMissingOutputDirectory) {
  const polaris::testing::CommandResult result =
      RunOptimize({"--model=scripted.pt", "--data=data.pt", "--out=no_such_dir/model.pt"});
  EXPECT_NE(result.exit_code, 0);
  const std::vector<std::string> errors = ErrorLines(result.output);
  ASSERT_EQ(errors.size(), 1u) << result.output;
  EXPECT_NE(errors[0].find("no_such_dir"), std::string::npos) << errors[0];
}

}  // namespace
}  // namespace polaris::pipeline
