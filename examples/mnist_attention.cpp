// Attention on images: MNIST as a sequence of patches, classified by a small pre-norm
// transformer encoder (heed::TransformerEncoder) with an attention-pooling head.
//
//   mnist_attention --data data/mnist [--epochs 10] [--batch-size 100] [--lr 1e-3] [--seed 0]
//                   [--threads N] [--maps out/attention_maps] [--num-maps 8]
//                   [--save PATH] [--resume PATH]
//
// Each 28x28 image is cut into 16 patches of 7x7 pixels (a 4x4 grid, row-major), so a batch is a
// batch of sequences (B, T=16, 49), stored batch-first as (B*16, 49):
//
//   patches -> Linear(49, 64) + learned position embeddings          tokens (B*16, 64)
//   TransformerEncoder: 2 x TransformerEncoderLayer(64, 4 heads, dim_feedforward 128, GELU,
//     norm_first, no dropout), i.e. 2 x [ LayerNorm -> MultiheadAttention -> + residual
//                                         LayerNorm -> Linear(64, 128) -> GELU -> Linear(128, 64)
//                                         -> + residual ]
//     then its final LayerNorm(64) (PyTorch's `norm`)
//   -> attention pooling: one learned query attends over the 16 tokens
//   (scaled dot-product, heed::Attention) -> Linear(64, 10) -> logits
//
// The model is heed modules registered as children (parameters, eval(), summary and the
// checkpoint follow from that) and only its forward is written: it calls the modules through a
// heed::Graph, which replays the calls backward (the encoder with its own backward) and sums the
// gradients of values used twice (the pooling's key = value). The two learned tensors heed has
// no layer for are Embedding lookups: the position embedding at ids 0..15 of every sample, and
// the pooling query as the one row of an Embedding(1, 64) looked up once per sample.
//
// Trained with cross-entropy and AdamW (weight decay 0.01), one epoch of linear warm-up then
// cosine decay per batch, inputs normalised (x/255 - 0.5)/0.5 as in mnist_mlp, training images
// shifted at random by up to 1 pixel (without it the model overfits: 98.2% instead of 98.6%). After testing,
// the first --num-maps test images are written to --maps as PNG files (png.hpp): the digit, the
// pooling query's attention over the patches, and the attention each patch receives in the
// last self-attention layer (mean over queries and heads), each heat map blended over the
// digit and upsampled 8x. --save / --resume as in mnist_mlp: a checkpoint after every epoch
// (model, AdamW, schedule, epoch, shuffling and augmentation streams), and with --threads 1 a
// resumed run prints what an uninterrupted one prints.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <heed/heed.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "png.hpp"

namespace {

using Scalar = float;
using heed::Index;
using heed::Labels;
using heed::Matrix;
using heed::Parameter;

constexpr Index kSide = 28;               // image side
constexpr Index kPatch = 7;               // patch side
constexpr Index kGrid = kSide / kPatch;   // 4 patches per row
constexpr Index kTokens = kGrid * kGrid;  // T = 16
constexpr Index kPatchDim = kPatch * kPatch;  // 49 pixels per token
constexpr Index kEmbed = 64;              // E
constexpr Index kHeads = 4;
constexpr Index kHidden = 128;            // feed-forward width
constexpr Index kBlocks = 2;              // encoder layers
constexpr Index kClasses = 10;

struct Args : examples::CommonArgs {
  std::string maps = "out/attention_maps";
  int num_maps = 8;
};

const examples::Usage kUsage{
    "mnist_attention",
    "mnist_attention [--data DIR] [--epochs N] [--batch-size N] [--lr X] [--seed N] [--threads N] "
    "[--maps DIR] [--num-maps N]\n"
    "                       [--save PATH] [--resume PATH]\n",
    "Trains a patch transformer with attention pooling on MNIST, prints the test report, and\n"
    "writes attention maps of the first --num-maps test images to --maps as PNG files.\n"
    "Defaults: --data data/mnist, --epochs 10, --batch-size 100, --lr 1e-3, --seed 0,\n"
    "--threads 0 (all cores), --maps out/attention_maps, --num-maps 8. --save PATH writes a\n"
    "checkpoint after every epoch; --resume PATH continues from one."};

Args parse(int argc, char** argv) {
  Args a;
  examples::parse_flags(argc, argv, kUsage, [&a](const std::string& k, const std::string& v) {
    if (k == "--maps") a.maps = v;
    else if (k == "--num-maps") examples::parse_number(v, a.num_maps);
    else return a.parse_common(k, v);
    return true;
  });
  if (!a.common_valid() || a.num_maps < 0)
    examples::usage_error(
        kUsage, "--epochs, --batch-size and --lr must be positive, --threads and --num-maps >= 0");
  return a;
}

// images (B, 784) -> patches (B*16, 49): token t = py*4 + px of sample b at row b*16 + t, pixel
// (r, c) of the patch at column r*7 + c.
void patchify(const Matrix<Scalar>& x, Matrix<Scalar>& p) {
  const Index B = x.rows();
  p.resize(B * kTokens, kPatchDim);
  for (Index b = 0; b < B; ++b)
    for (Index py = 0; py < kGrid; ++py)
      for (Index px = 0; px < kGrid; ++px)
        for (Index r = 0; r < kPatch; ++r)
          p.row(b * kTokens + py * kGrid + px).segment(r * kPatch, kPatch) =
              x.row(b).segment((py * kPatch + r) * kSide + px * kPatch, kPatch);
}

using Graph = heed::Graph<Scalar>;
using Var = heed::Var<Scalar>;

// Attention pooling: one learned query attends over a sample's tokens,
// c = softmax(q z^T / sqrt(E)) z. The query is looked up once per sample, so its gradient is
// summed over the batch by Embedding's backward.
struct AttentionPool : heed::ModuleBase<Scalar> {
  heed::Embedding<Scalar> query;
  heed::Attention<Scalar> attention;  // scaled dot-product, no parameters
  heed::Tokens ids;                   // (B, 1) zeros: every sample's query is row 0

  // N(0, 0.02) as ViT: small, so pooling starts as a mean.
  explicit AttentionPool(heed::Generator& gen) : query(1, kEmbed, -1, gen) { query.weight() *= Scalar(0.02); }
  heed::Children<Scalar> children() override { return {{"query", &query}, {"attention", &attention}}; }
  std::string name() const override { return "AttentionPool"; }

  // z (B*T, E) -> c (B, E); weights() (B, T) afterwards.
  Var forward(Graph& g, Var z, Index B) {
    if (ids.rows() != B) ids = heed::Tokens::Zero(B, 1);
    return g(attention, g(query, ids), z, z, B);  // z is key and value
  }
  const Matrix<Scalar>& weights() const { return attention.weights(); }
};

// The whole classifier. Only its forward is written: the graph replays it backward.
class PatchTransformer : public heed::ModuleBase<Scalar> {
 public:
  // Members draw their initial weights from gen in the order they are declared.
  explicit PatchTransformer(heed::Generator& gen)
      : patch_embed_(kPatchDim, kEmbed, true, gen),
        pos_embed_(kTokens, kEmbed, -1, gen),
        // Each layer initialised in turn from gen (not PyTorch's copies of one layer).
        encoder_(kEmbed, kHeads, kBlocks,
                 {.dim_feedforward = kHidden, .dropout = 0.0,
                  .activation = heed::TransformerActivation::gelu, .norm_first = true},
                 {.norm = heed::LayerNorm<Scalar>(kEmbed)}, gen),
        pool_(gen),
        head_(kEmbed, kClasses, true, gen) {
    pos_embed_.weight() *= Scalar(0.02);  // N(0, 0.02) as ViT
  }

  heed::Children<Scalar> children() override {
    return {{"patch_embed", &patch_embed_}, {"pos_embed", &pos_embed_}, {"encoder", &encoder_},
            {"pool", &pool_}, {"head", &head_}};
  }
  std::string name() const override { return "PatchTransformer"; }

  // x (B, 784) normalised pixels -> logits (B, 10).
  Var forward(Graph& g, const Matrix<Scalar>& x) {
    const Index B = x.rows();
    B_ = B;
    patchify(x, patches_);                                              // patches (B*T, 49)
    if (pos_ids_.rows() != B)  // (B, T): every sample's token t is at position t
      pos_ids_ = heed::Tokens::NullaryExpr(B, kTokens, [](Index, Index t) { return std::int32_t(t); });
    // Tokens: the patch projection plus the learned position embedding, as GPT-2's wte + wpe.
    const Var h = g(patch_embed_, g.input(patches_)) + g(pos_embed_, pos_ids_);  // (B*T, E)
    tokens_ = h;
    const Var z = g(encoder_, h, B);                                    // (B*T, E)
    return g(head_, pool_.forward(g, z, B));                            // (B, E) -> (B, 10)
  }

  // After forward(g, x): the pooling weights (B, T).
  const Matrix<Scalar>& pool_weights() const { return pool_.weights(); }

  // After forward(g, x) in eval mode: the attention each token receives in the last
  // self-attention layer, mean over queries and heads (B, T). The encoder layers ask their
  // attention for no weights (PyTorch's need_weights=False, the fused kernel), so this replays
  // the last forward's tokens through the layers before the last one, and the last one's norm1
  // and self_attn with need_weights. Outside the graph: no backward may follow.
  Matrix<Scalar> received_attention() {
    Matrix<Scalar> x = tokens_->value();                                // (B*T, E)
    for (Index i = 0; i + 1 < kBlocks; ++i)
      x = encoder_.layer(static_cast<std::size_t>(i)).forward(x, B_);
    auto& last = encoder_.layer(static_cast<std::size_t>(kBlocks - 1));
    const Matrix<Scalar> n1 = last.norm1().forward(x);
    const Matrix<Scalar>& w =
        last.self_attn().forward(n1, n1, n1, B_, {.need_weights = true}).weights;  // (B*T, T)
    Matrix<Scalar> r(B_, kTokens);
    for (Index b = 0; b < B_; ++b) r.row(b) = w.middleRows(b * kTokens, kTokens).colwise().mean();
    return r;
  }

 private:
  heed::Linear<Scalar> patch_embed_;
  heed::Embedding<Scalar> pos_embed_;  // (T, E), looked up at each sample's positions
  heed::TransformerEncoder<Scalar> encoder_;  // pre-norm, with the final LayerNorm
  AttentionPool pool_;
  heed::Linear<Scalar> head_;
  Index B_ = 0;
  std::optional<Var> tokens_;  // the encoder's input in the last forward (B*T, E)
  Matrix<Scalar> patches_;  // (B*T, 49)
  heed::Tokens pos_ids_;    // (B, T)
};

// Logits for every row of `images`, in batches, in eval mode.                          (N, 10)
Matrix<Scalar> predict(PatchTransformer& model, const heed::ByteMatrix& images) {
  model.eval();
  Graph g;
  Matrix<Scalar> logits(images.rows(), kClasses), x;
  const Index B = 500;
  for (Index i = 0; i < images.rows(); i += B) {
    const Index n = std::min(B, images.rows() - i);
    heed::normalize(images.middleRows(i, n), x, Scalar(0.5), Scalar(0.5));
    g.clear();
    logits.middleRows(i, n) = model.forward(g, x).value();
  }
  model.train();
  return logits;
}

// ---- attention maps ----

// One image: [digit | pooling attention over the digit | attention received in the last
// self-attention layer over the digit], each panel 28x28 scaled by `scale`.
void write_map(const std::string& path, const std::uint8_t* pixels, const Scalar* pool,
               const Scalar* received, int scale) {
  const int side = static_cast<int>(kSide) * scale, gap = 2 * scale, panels = 3;
  const int w = panels * side + (panels - 1) * gap, h = side;
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w) * h * 3, 255);
  // One fixed scale for both maps, so they can be compared: each sums to 1 over the 16
  // patches, a uniform map (1/16 per patch) is dark red and 3x uniform or more saturates white.
  auto heat_of = [](const Scalar* w, Index t) { return static_cast<double>(w[t]) * kTokens / 3.0; };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < side; ++x) {
      const int py = y / scale, px = x / scale;
      const double ink = pixels[py * kSide + px] / 255.0;
      const Index token = (py / kPatch) * kGrid + px / kPatch;
      const double heat[2] = {heat_of(pool, token), heat_of(received, token)};
      std::uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
      p[0] = p[1] = p[2] = static_cast<std::uint8_t>(255 * ink);  // panel 1: the digit
      for (int k = 0; k < 2; ++k)  // panels 2, 3: heat, with the strokes drawn in light blue
        examples::heat_over_ink(p + (static_cast<std::size_t>(k + 1) * (side + gap)) * 3, heat[k], ink);
    }
  examples::write_png(path, w, h, 3, rgb);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  examples::set_threads(args.threads);

  const auto t_load = std::chrono::steady_clock::now();
  const heed::MnistData mnist = heed::load_mnist(args.data);
  std::printf("MNIST: %ld training, %ld test images (loaded in %.2f s); %d thread(s)\n",
              static_cast<long>(mnist.train_images.rows()), static_cast<long>(mnist.test_images.rows()),
              examples::seconds_since(t_load), Eigen::nbThreads());

  heed::Generator init(args.seed);
  PatchTransformer model(init);
  std::printf("Model: %ld patches of %ldx%ld, embed %ld, %ld heads, %ld blocks, attention pooling; "
              "%ld parameters\n%s",
              static_cast<long>(kTokens), static_cast<long>(kPatch), static_cast<long>(kPatch),
              static_cast<long>(kEmbed), static_cast<long>(kHeads), static_cast<long>(kBlocks),
              static_cast<long>(model.num_parameters()), heed::summary(model).c_str());

  heed::CrossEntropyLoss<Scalar> criterion;
  const std::vector<Parameter<Scalar>> params = model.parameters();
  heed::AdamW<Scalar> optimizer(params, {.lr = Scalar(args.lr), .weight_decay = Scalar(0.01)});
  heed::DataLoader<Scalar> loader(mnist.train_images, mnist.train_labels,
                                  {.batch_size = args.batch_size, .shuffle = true, .seed = args.seed,
                                   .mean = Scalar(0.5), .std = Scalar(0.5)});
  const Index steps_per_epoch = loader.num_batches();
  // One epoch of linear warm-up from lr/100, then cosine decay to 0, stepped per batch.
  const std::int64_t total = steps_per_epoch * args.epochs;
  heed::WarmupCosineLR<Scalar> schedule(
      optimizer, {.warmup_iters = std::min<std::int64_t>(steps_per_epoch, total - 1), .total_iters = total});
  heed::Generator aug_gen(args.seed + 1);

  // --save / --resume: the model, the optimizer, the schedule (it depends on --epochs), the
  // loader's shuffling and the augmentation.
  examples::TrainingRun run(args);
  run.state().model(model).optimizer(optimizer).optimizer(schedule, "scheduler");
  run.state().generator("augment", aug_gen);
  run.setting("epochs", "--epochs", args.epochs);
  run.resume([&](int epochs_done) -> heed::Generator& {
    for (int e = 0; e < epochs_done; ++e) loader.start_epoch();
    return loader.generator();
  });

  Graph g;  // one forward at a time: cleared per batch, its buffers reused
  Matrix<Scalar> x;
  Labels y;
  for (int epoch = run.epochs_done + 1; epoch <= args.epochs; ++epoch) {
    examples::EpochMeter meter(steps_per_epoch);
    loader.start_epoch();
    while (loader.next(x, y)) {
      heed::random_shift(x, kSide, kSide, 1, Scalar(-1), aug_gen);  // +-1 pixel, background -1
      optimizer.zero_grad();
      g.clear();
      const Var logits = model.forward(g, x);
      const Scalar loss = criterion.forward(logits.value(), y);
      g.backward(logits, criterion.backward());
      heed::check_finite(loss, params, optimizer.step_count() + 1);  // before the update
      optimizer.step();
      schedule.step();
      meter.add(loss);
    }
    const double secs = meter.seconds();
    run.end_epoch(epoch, secs, loader.generator());  // before the line is printed
    std::printf("Epoch [%d/%d], Loss: %.4f, Time: %.2f s\n", epoch, args.epochs, meter.mean_loss(),
                secs);
    std::fflush(stdout);
  }
  std::printf("Training time: %.2f s (%.2f s per epoch)\n", run.seconds,
              run.seconds / run.epochs_done);

  const Labels pred =
      examples::print_test_report(predict(model, mnist.test_images), mnist.test_labels);

  // Attention maps of the first test images.
  const Index n_maps = std::min<Index>(args.num_maps, mnist.test_images.rows());
  if (n_maps > 0) {
    std::filesystem::create_directories(args.maps);
    heed::normalize(mnist.test_images.topRows(n_maps), x, Scalar(0.5), Scalar(0.5));
    g.clear();
    model.eval();
    model.forward(g, x);
    const Matrix<Scalar> pool = model.pool_weights();       // (N, T)
    const Matrix<Scalar> recv = model.received_attention();  // (N, T)
    for (Index i = 0; i < n_maps; ++i) {
      char name[96];
      std::snprintf(name, sizeof name, "test_%04ld_label%d_pred%d.png", static_cast<long>(i),
                    mnist.test_labels(i), pred(i));
      write_map((std::filesystem::path(args.maps) / name).string(),
                mnist.test_images.row(i).data(), pool.row(i).data(), recv.row(i).data(), 8);
    }
    std::printf("\nAttention maps of the first %ld test images in %s/ "
                "(digit | pooling attention | attention received in the last layer)\n"
                "Pooling weights of these images: min %.4f, max %.4f (uniform: %.4f)\n",
                static_cast<long>(n_maps), args.maps.c_str(), pool.minCoeff(), pool.maxCoeff(),
                1.0 / kTokens);
  }
  return 0;
} catch (const heed::Error& e) {
  return examples::report_error(kUsage, e);
} catch (const std::exception& e) {
  return examples::report_error(kUsage, e);
}
