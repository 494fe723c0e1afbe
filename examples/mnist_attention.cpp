// Attention on images: MNIST as a sequence of patches, classified by a small pre-norm
// transformer with an attention-pooling head.
//
//   mnist_attention --data data/mnist [--epochs 10] [--batch-size 100] [--lr 1e-3] [--seed 0]
//                   [--threads N] [--maps out/attention_maps] [--num-maps 8]
//
// Each 28x28 image is cut into 16 patches of 7x7 pixels (a 4x4 grid, row-major), so a batch is a
// batch of sequences (B, T=16, 49), stored batch-first as (B*16, 49):
//
//   patches -> Linear(49, 64) + learned position embeddings          tokens (B*16, 64)
//   2 x [ LayerNorm -> MultiheadAttention(64, 4 heads) -> + residual
//         LayerNorm -> Linear(64, 128) -> GELU -> Linear(128, 64) -> + residual ]
//   LayerNorm -> attention pooling: one learned query attends over the 16 tokens
//   (scaled dot-product, heed::Attention) -> Linear(64, 10) -> logits
//
// Trained with cross-entropy and AdamW (weight decay 0.01), one epoch of linear warm-up then
// cosine decay per batch, inputs normalised (x/255 - 0.5)/0.5 as in mnist_mlp, training images
// shifted at random by up to 1 pixel (without it the model overfits: 98.3% instead of 98.7%). After testing,
// the first --num-maps test images are written to --maps as PNG files (png.hpp): the digit, the
// pooling query's attention over the patches, and the attention each patch receives in the
// last self-attention layer (mean over queries and heads), each heat map blended over the
// digit and upsampled 8x.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <heed/heed.hpp>
#include <iostream>
#include <memory>
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
constexpr Index kHidden = 128;            // MLP width
constexpr Index kBlocks = 2;
constexpr Index kClasses = 10;

struct Args : examples::CommonArgs {
  std::string maps = "out/attention_maps";
  int num_maps = 8;
};

const examples::Usage kUsage{
    "mnist_attention",
    "mnist_attention [--data DIR] [--epochs N] [--batch-size N] [--lr X] [--seed N] [--threads N] "
    "[--maps DIR] [--num-maps N]\n",
    "Trains a patch transformer with attention pooling on MNIST, prints the test report, and\n"
    "writes attention maps of the first --num-maps test images to --maps as PNG files.\n"
    "Defaults: --data data/mnist, --epochs 10, --batch-size 100, --lr 1e-3, --seed 0,\n"
    "--threads 0 (all cores), --maps out/attention_maps, --num-maps 8."};

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

// One pre-norm transformer block: h = h + attn(ln1(h)); h = h + mlp(ln2(h)).
struct Block {
  heed::LayerNorm<Scalar> ln1{kEmbed}, ln2{kEmbed};
  heed::MultiheadAttention<Scalar> attn;
  heed::Linear<Scalar> fc1, fc2;
  heed::GELU<Scalar> gelu;
  Matrix<Scalar> da;  // (B*T, E) dquery + dkey + dvalue of the self-attention

  explicit Block(heed::Generator& gen)
      : attn(kEmbed, kHeads, {}, gen), fc1(kEmbed, kHidden, true, gen), fc2(kHidden, kEmbed, true, gen) {}

  // h (B*T, E) is updated in place. keep_weights: keep the head-averaged attention (B*T, T).
  void forward(Matrix<Scalar>& h, Index B, bool keep_weights) {
    const Matrix<Scalar>& a = ln1.forward(h);                              // (B1) a = ln1(h)   (B*T, E)
    h += attn.forward(a, a, a, B, {.need_weights = keep_weights}).output;  // (B2) h += mha(a, a, a)
    const Matrix<Scalar>& m = ln2.forward(h);                              // (B3) m = ln2(h)   (B*T, E)
    h += fc2.forward(gelu.forward(fc1.forward(m)));                        // (B4) h += fc2(gelu(fc1(m)))  (B*T, H)->(B*T, E)
  }

  // dh (B*T, E): dL/dh at the block's output in, dL/dh at its input out (in place).
  void backward(Matrix<Scalar>& dh) {
    // d of (B4): the residual passes dh through; the MLP branch adds its input gradient via (B3).
    const Matrix<Scalar>& dm = fc1.backward(gelu.backward(fc2.backward(dh)));  // (B*T, E)
    dh += ln2.backward(dm);                                                     // d of (B3)
    // d of (B2): residual again; a fed query, key and value, so its gradient is the sum.
    const auto g = attn.backward(dh);
    da = g.dquery + g.dkey + g.dvalue;                                          // (B*T, E)
    dh += ln1.backward(da);                                                     // d of (B1)
  }

  std::vector<Parameter<Scalar>> parameters(const std::string& prefix) {
    std::vector<Parameter<Scalar>> all;
    auto add = [&](std::vector<Parameter<Scalar>> ps, const std::string& name) {
      heed::prefix_names(ps, prefix + "." + name);
      all.insert(all.end(), ps.begin(), ps.end());
    };
    add(ln1.parameters(), "norm1");
    add(attn.parameters(), "attn");
    add(ln2.parameters(), "norm2");
    add(fc1.parameters(), "mlp.fc1");
    add(fc2.parameters(), "mlp.fc2");
    return all;
  }
};

// The whole classifier, forward and backward side by side.
class PatchTransformer {
 public:
  explicit PatchTransformer(std::uint64_t seed)
      : gen_(seed), embed_(kPatchDim, kEmbed, true, gen_), head_(kEmbed, kClasses, true, gen_) {
    for (Index i = 0; i < kBlocks; ++i) blocks_.push_back(std::make_unique<Block>(gen_));
    pos_.resize(kTokens, kEmbed);  // (T, E), N(0, 0.02) as ViT
    for (Index i = 0; i < pos_.size(); ++i) pos_.data()[i] = static_cast<Scalar>(gen_.normal(0, 0.02));
    dpos_ = Matrix<Scalar>::Zero(kTokens, kEmbed);
    query_.resize(1, kEmbed);  // (1, E) the pooling query; small, so pooling starts as a mean
    for (Index i = 0; i < query_.size(); ++i) query_.data()[i] = static_cast<Scalar>(gen_.normal(0, 0.02));
    dquery_ = Matrix<Scalar>::Zero(1, kEmbed);
    embed_.requires_input_grad(false);  // nobody needs d(loss)/d(pixels)
  }

  // x (B, 784) normalised pixels -> logits (B, 10). keep_maps: also keep the last block's
  // head-averaged self-attention weights for attention maps.
  const Matrix<Scalar>& forward(const Matrix<Scalar>& x, bool keep_maps = false) {
    const Index B = x.rows();
    B_ = B;
    patchify(x, patches_);                                         // (1) patches      (B*T, 49)
    h_ = embed_.forward(patches_);                                 // (2) h = patches W^T + b   (B*T, E)
    for (Index b = 0; b < B; ++b) h_.middleRows(b * kTokens, kTokens) += pos_;  // (3) h += pos  per sample
    for (Index i = 0; i < kBlocks; ++i)                           // (4) h = block_i(h)  (B*T, E)
      blocks_[i]->forward(h_, B, keep_maps && i == kBlocks - 1);
    const Matrix<Scalar>& z = norm_.forward(h_);                   // (5) z = ln(h)    (B*T, E)
    q_ = query_.replicate(B, 1);                                   // (6) q = query per sample  (B*1, E)
    const Matrix<Scalar>& c = pool_.forward(q_, z, z, B);          // (7) c = softmax(q z^T / sqrt E) z  (B, E)
    return head_.forward(c);                                       // (8) logits = c W^T + b  (B, 10)
  }

  // dlogits (B, 10) -> += every parameter gradient.
  void backward(const Matrix<Scalar>& dlogits) {
    const Matrix<Scalar>& dc = head_.backward(dlogits);            // d of (8)   (B, E)
    const auto g = pool_.backward(dc);                             // d of (7)
    dquery_ += g.dquery.colwise().sum();                           // d of (6): query shared by all samples
    dz_ = g.dkey + g.dvalue;                                       // d of (7): z was keys and values  (B*T, E)
    dh_ = norm_.backward(dz_);                                     // d of (5)   (B*T, E)
    for (Index i = kBlocks - 1; i >= 0; --i) blocks_[i]->backward(dh_);  // d of (4)
    for (Index b = 0; b < B_; ++b) dpos_ += dh_.middleRows(b * kTokens, kTokens);  // d of (3)
    embed_.backward(dh_);                                          // d of (2): weight and bias only
  }

  std::vector<Parameter<Scalar>> parameters() {
    std::vector<Parameter<Scalar>> all;
    auto add = [&](std::vector<Parameter<Scalar>> ps, const std::string& prefix) {
      heed::prefix_names(ps, prefix);
      all.insert(all.end(), ps.begin(), ps.end());
    };
    add(embed_.parameters(), "patch_embed");
    all.push_back({"pos_embed", &pos_, &dpos_});
    for (Index i = 0; i < kBlocks; ++i) {
      auto ps = blocks_[i]->parameters("blocks." + std::to_string(i));
      all.insert(all.end(), ps.begin(), ps.end());
    }
    add(norm_.parameters(), "norm");
    all.push_back({"pool.query", &query_, &dquery_});
    add(head_.parameters(), "head");
    return all;
  }

  // After forward(x, true): the pooling weights (B, T) and the last block's attention received
  // per token, mean over queries and heads (B, T).
  const Matrix<Scalar>& pool_weights() const { return pool_.weights(); }
  Matrix<Scalar> received_attention() const {
    const Matrix<Scalar>& w = blocks_.back()->attn.weights();  // (B*T, T) head-averaged
    Matrix<Scalar> r(B_, kTokens);
    for (Index b = 0; b < B_; ++b) r.row(b) = w.middleRows(b * kTokens, kTokens).colwise().mean();
    return r;
  }

 private:
  heed::Generator gen_;
  heed::Linear<Scalar> embed_;
  Matrix<Scalar> pos_, dpos_;      // (T, E)
  std::vector<std::unique_ptr<Block>> blocks_;
  heed::LayerNorm<Scalar> norm_{kEmbed};
  Matrix<Scalar> query_, dquery_;  // (1, E)
  heed::Attention<Scalar> pool_;   // scaled dot-product, no parameters of its own
  heed::Linear<Scalar> head_;
  Index B_ = 0;
  Matrix<Scalar> patches_;         // (B*T, 49)
  Matrix<Scalar> h_, dh_, dz_;     // (B*T, E)
  Matrix<Scalar> q_;               // (B, E)
};

// Logits for every row of `images`, in batches.                                        (N, 10)
Matrix<Scalar> predict(PatchTransformer& model, const heed::ByteMatrix& images) {
  Matrix<Scalar> logits(images.rows(), kClasses), x;
  const Index B = 500;
  for (Index i = 0; i < images.rows(); i += B) {
    const Index n = std::min(B, images.rows() - i);
    heed::normalize(images.middleRows(i, n), x, Scalar(0.5), Scalar(0.5));
    logits.middleRows(i, n) = model.forward(x);
  }
  return logits;
}

// ---- attention maps ----

// Black -> red -> yellow -> white for v in [0, 1].
std::array<double, 3> heat_color(double v) {
  v = std::clamp(v, 0.0, 1.0);
  return {std::min(1.0, 3 * v), std::clamp(3 * v - 1, 0.0, 1.0), std::clamp(3 * v - 2, 0.0, 1.0)};
}

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
      for (int k = 0; k < 2; ++k) {  // panels 2, 3: heat, with the strokes drawn in light blue
        const auto c = heat_color(heat[k]);
        const double s[3] = {0.55, 0.8, 1.0};
        std::uint8_t* q = p + (static_cast<std::size_t>(k + 1) * (side + gap)) * 3;
        for (int ch = 0; ch < 3; ++ch)
          q[ch] = static_cast<std::uint8_t>(255 * ((1 - 0.6 * ink) * c[ch] + 0.6 * ink * s[ch]));
      }
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

  PatchTransformer model(args.seed);
  Index n_params = 0;
  for (const auto& p : model.parameters()) n_params += p.value->size();
  std::printf("Model: %ld patches of %ldx%ld, embed %ld, %ld heads, %ld blocks, attention pooling; "
              "%ld parameters\n",
              static_cast<long>(kTokens), static_cast<long>(kPatch), static_cast<long>(kPatch),
              static_cast<long>(kEmbed), static_cast<long>(kHeads), static_cast<long>(kBlocks),
              static_cast<long>(n_params));

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
  Matrix<Scalar> x;
  Labels y;
  double total_seconds = 0;
  for (int epoch = 1; epoch <= args.epochs; ++epoch) {
    examples::EpochMeter meter(steps_per_epoch);
    loader.start_epoch();
    while (loader.next(x, y)) {
      heed::random_shift(x, kSide, kSide, 1, Scalar(-1), aug_gen);  // +-1 pixel, background -1
      optimizer.zero_grad();
      const Scalar loss = criterion.forward(model.forward(x), y);
      model.backward(criterion.backward());
      heed::check_finite(loss, params, optimizer.step_count() + 1);  // before the update
      optimizer.step();
      schedule.step();
      meter.add(loss);
    }
    const double secs = meter.seconds();
    total_seconds += secs;
    std::printf("Epoch [%d/%d], Loss: %.4f, Time: %.2f s\n", epoch, args.epochs, meter.mean_loss(),
                secs);
    std::fflush(stdout);
  }
  std::printf("Training time: %.2f s (%.2f s per epoch)\n", total_seconds, total_seconds / args.epochs);

  const Labels pred =
      examples::print_test_report(predict(model, mnist.test_images), mnist.test_labels);

  // Attention maps of the first test images.
  const Index n_maps = std::min<Index>(args.num_maps, mnist.test_images.rows());
  if (n_maps > 0) {
    std::filesystem::create_directories(args.maps);
    heed::normalize(mnist.test_images.topRows(n_maps), x, Scalar(0.5), Scalar(0.5));
    model.forward(x, /*keep_maps=*/true);
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
  std::fprintf(stderr, "mnist_attention: %s\n", e.what());
  return 1;
}
