// Date normalisation with an attentive encoder-decoder: dates written in twelve
// human formats ("24 November 2026", "Nov 24, 26", "tuesday 24/11/2026", "24.11.2026",
// "November 24th, 2026", ...) are translated character by character into ISO "2026-11-24".
// Everything is synthetic and seeded: the dates 1950-01-01 .. 2049-12-31 are shuffled, 2,000
// of them are held out (never seen in training, whatever the format), and the model trains
// with Adam and gradient clipping until held-out exact-match accuracy reaches 99%.
// --model gru (the default) is heed::Seq2Seq, a bidirectional-GRU encoder and an attentive GRU
// decoder with the score chosen by --score; --model transformer is heed::TransformerSeq2Seq
// (2 + 2 layers, d_model 64, 4 heads, ff 256, dropout 0.1, sinusoidal or learned positions),
// decoded with its KV caches.
//
//   seq2seq_dates [--model gru|transformer] [--score additive|dot|general|scaled]
//                 [--positions sinusoidal|learned] [--epochs 30] [--seed 0] [--threads N]
//                 [--beam 1] [--maps out/seq2seq_maps] [--train 20000] [--batch-size 64]
//                 [--lr 3e-3] [--save PATH] [--resume PATH]
//
// --save PATH writes a checkpoint (atomically) after every epoch: the model, Adam's state, the
// epoch, the held-out accuracy and the shuffling generator. --resume PATH continues from one;
// with --threads 1 the resumed run prints what an uninterrupted one prints. --epochs may grow on
// resume (it only bounds training); the other settings must be the same.
//
// After training, the attention of a few held-out examples (the transformer: its last decoder
// layer's cross-attention, mean over heads) is printed as text (output
// characters down, input characters across) and written to DIR/attention_<i>.png (a grey PNG,
// dark = attended, the characters drawn along both axes), and the program checks that the
// year's output characters attend to the year's input characters over the whole test set.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <heed/heed.hpp>
#include <string>
#include <vector>

#include "common.hpp"
#include "png.hpp"

namespace {

using Scalar = float;
using heed::Index;
using heed::Labels;
using heed::Matrix;
using heed::Tokens;

const char* const kModels[] = {"gru", "transformer"};
const char* const kScores[] = {"additive", "dot", "general", "scaled"};
std::size_t score_index(const std::string& score) {
  return static_cast<std::size_t>(std::find(std::begin(kScores), std::end(kScores), score) - std::begin(kScores));
}

struct Args : examples::CommonArgs {
  // The data is generated, so no --data.
  Args() : CommonArgs{.takes_data = false, .epochs = 30, .batch_size = 64, .lr = 3e-3} {}
  std::string model = "gru";
  std::string positions = "sinusoidal";
  std::string score = "additive";
  bool lr_given = false;
  Index beam = 1;
  std::string maps = "out/seq2seq_maps";
  Index train = 20000;
};

const examples::Usage kUsage{
    "seq2seq_dates",
    "seq2seq_dates [--model gru|transformer] [--score additive|dot|general|scaled]\n"
    "                     [--positions sinusoidal|learned] [--epochs N] [--seed N] [--threads N] [--beam N] [--maps DIR] [--train N] [--batch-size N] [--lr X]\n"
    "                     [--save PATH] [--resume PATH]\n",
    "Translates human-written dates (synthetic and seeded) to ISO 8601 with an attentive\n"
    "encoder-decoder, trains until held-out exact match reaches 99% (exit code 1 if it stops\n"
    "short), and writes attention maps of six held-out examples to --maps.\n"
    "Defaults: --model gru, --score additive (gru only), --positions sinusoidal (transformer\n"
    "only), --epochs 30, --train 20000,\n"
    "--batch-size 64, --lr 3e-3 (gru) or 2e-3 (transformer), --seed 0,\n"
    "--threads 0 (all cores), --beam 1 (greedy), --maps out/seq2seq_maps. --save PATH writes a\n"
    "checkpoint after every epoch; --resume PATH continues from one (--epochs may be larger)."};

Args parse(int argc, char** argv) {
  Args a;
  examples::parse_flags(argc, argv, kUsage, [&a](const std::string& k, const std::string& v) {
    if (k == "--model") a.model = v;
    else if (k == "--positions") a.positions = v;
    else if (k == "--score") a.score = v;
    else if (k == "--lr") return a.lr_given = true, a.parse_common(k, v);
    else if (k == "--beam") examples::parse_number(v, a.beam);
    else if (k == "--maps") a.maps = v;
    else if (k == "--train") examples::parse_number(v, a.train);
    else return a.parse_common(k, v);
    return true;
  });
  if (std::find(std::begin(kModels), std::end(kModels), a.model) == std::end(kModels))
    examples::usage_error(kUsage, "--model is gru or transformer");
  if (a.positions != "sinusoidal" && a.positions != "learned")
    examples::usage_error(kUsage, "--positions is sinusoidal or learned");
  if (a.model == "transformer" && !a.lr_given) a.lr = 2e-3;
  if (score_index(a.score) == std::size(kScores))
    examples::usage_error(kUsage, "--score is additive, dot, general or scaled");
  if (!a.common_valid() || a.beam < 1 || a.train < 1)
    examples::usage_error(kUsage, "--epochs, --beam, --train, --batch-size and --lr must be "
                                  "positive, --threads >= 0");
  return a;
}

// ---- the synthetic task ---------------------------------------------------------------------

// Fisher-Yates with heed's seeded generator: the same order on every platform.
template <class V>
void shuffle(std::vector<V>& v, heed::Generator& gen) {
  for (std::size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[gen.below(i + 1)]);
}

const char* const kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                               "July",    "August",   "September", "October", "November", "December"};
const char* const kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

struct Date {
  int y, m, d;
};

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int days_in(int y, int m) {
  static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : n[m - 1];
}
// 0 = Sunday (Sakamoto's method, proleptic Gregorian).
int weekday(Date dt) {
  static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
  int y = dt.y;
  if (dt.m < 3) y -= 1;
  return (y + y / 4 - y / 100 + y / 400 + t[dt.m - 1] + dt.d) % 7;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string two(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }
std::string ordinal(int d) {
  const char* sfx = (d % 10 == 1 && d != 11) ? "st" : (d % 10 == 2 && d != 12) ? "nd"
                    : (d % 10 == 3 && d != 13) ? "rd" : "th";
  return std::to_string(d) + sfx;
}

constexpr int kFormats = 12;
const char* const kFormatNames[kFormats] = {
    "24 November 2026", "Nov 24, 26",          "tuesday 24/11/2026",       "24.11.2026",
    "2026/11/24",       "November 24th, 2026", "Tue, 24 Nov 2026",         "24-nov-2026",
    "TUESDAY, NOVEMBER 24, 2026", "the 24th of november 2026", "24 nov 26",
    "Tuesday, November 24, 2026"};

// The date in format f; [year_begin, year_end) is where the year's characters are.
struct Sample {
  std::string text, iso;
  int format, year_begin, year_end;
};

Sample render(Date dt, int f) {
  const std::string month = kMonths[dt.m - 1], mon = month.substr(0, 3);
  const std::string day = kDays[weekday(dt)], wkd = day.substr(0, 3);
  const std::string yyyy = std::to_string(dt.y), yy = two(dt.y % 100);
  const std::string d = std::to_string(dt.d), dd = two(dt.d), mm = two(dt.m);
  Sample s{"", yyyy + "-" + mm + "-" + dd, f, 0, 0};
  auto year = [&s](const std::string& y) {
    s.year_begin = static_cast<int>(s.text.size());
    s.text += y;
    s.year_end = static_cast<int>(s.text.size());
  };
  switch (f) {
    case 0: s.text = d + " " + month + " "; year(yyyy); break;
    case 1: s.text = mon + " " + d + ", "; year(yy); break;
    case 2: s.text = lower(day) + " " + dd + "/" + mm + "/"; year(yyyy); break;
    case 3: s.text = dd + "." + mm + "."; year(yyyy); break;
    case 4: year(yyyy); s.text += "/" + mm + "/" + dd; break;
    case 5: s.text = month + " " + ordinal(dt.d) + ", "; year(yyyy); break;
    case 6: s.text = wkd + ", " + d + " " + mon + " "; year(yyyy); break;
    case 7: s.text = d + "-" + lower(mon) + "-"; year(yyyy); break;
    case 8: s.text = upper(day) + ", " + upper(month) + " " + d + ", "; year(yyyy); break;
    case 9: s.text = "the " + ordinal(dt.d) + " of " + lower(month) + " "; year(yyyy); break;
    case 10: s.text = d + " " + lower(mon) + " "; year(yy); break;
    default: s.text = day + ", " + month + " " + d + ", "; year(yyyy); break;
  }
  return s;
}

// Vocabularies: 0 pad, 1 bos, 2 eos (target only), then characters.
const std::string kSrcChars =
    " ,./-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const std::string kTgtChars = "0123456789-";
constexpr int kPad = 0, kBos = 1, kEos = 2;
int src_id(char c) { return 3 + static_cast<int>(kSrcChars.find(c)); }
int tgt_id(char c) { return 3 + static_cast<int>(kTgtChars.find(c)); }
char tgt_char(int id) { return id >= 3 ? kTgtChars[static_cast<std::size_t>(id - 3)] : '$'; }

struct Batch {
  Tokens src, tin, tout;
  Labels len;
};

Batch make_batch(const std::vector<Sample>& data, const std::vector<std::size_t>& order,
                 std::size_t begin, std::size_t end) {
  const Index B = static_cast<Index>(end - begin);
  Index Ts = 1;
  for (std::size_t i = begin; i < end; ++i) Ts = std::max<Index>(Ts, Index(data[order[i]].text.size()));
  const Index To = 11;  // 10 ISO characters + eos
  Batch b{Tokens::Constant(B, Ts, kPad), Tokens(B, To), Tokens(B, To), Labels(B)};
  for (Index r = 0; r < B; ++r) {
    const Sample& s = data[order[begin + std::size_t(r)]];
    b.len(r) = static_cast<int>(s.text.size());
    for (Index t = 0; t < Index(s.text.size()); ++t) b.src(r, t) = src_id(s.text[std::size_t(t)]);
    b.tin(r, 0) = kBos;
    for (Index t = 0; t < 10; ++t) {
      b.tout(r, t) = tgt_id(s.iso[std::size_t(t)]);
      b.tin(r, t + 1) = b.tout(r, t);
    }
    b.tout(r, 10) = kEos;
  }
  return b;
}

// ---- attention maps -------------------------------------------------------------------------

// 3x5 glyphs, one octal digit per row (bit 4 = left column). Letters are drawn in capitals;
// '$' is the end-of-sequence token.
const char* glyph(char c) {
  static const char* digits[] = {"75557", "26227", "71747", "71717", "55711",
                                 "74717", "74757", "71122", "75757", "75717"};
  static const char* letters[] = {"25755", "65656", "34443", "65556", "74647", "74644", "34553",
                                  "55755", "72227", "11152", "55655", "44447", "57755", "65555",
                                  "25552", "65644", "25563", "65655", "34216", "72222", "55557",
                                  "55552", "55775", "55255", "55222", "71247"};
  if (c >= '0' && c <= '9') return digits[c - '0'];
  const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (u >= 'A' && u <= 'Z') return letters[u - 'A'];
  switch (c) {
    case ',': return "00024";
    case '.': return "00002";
    case '/': return "11244";
    case '-': return "00700";
    case '$': return "07570";
    default: return "00000";
  }
}

// A grey PNG: cell (i, j) is an s x s square, 255 * (1 - weight); input characters along the
// top, output characters down the left.
void write_map(const std::string& path, const Matrix<Scalar>& A, const std::string& in,
               const std::string& out) {
  const int s = 14, g = 2;  // cell size, glyph scale (3x5 -> 6x10)
  const int rows = static_cast<int>(A.rows()), cols = static_cast<int>(A.cols());
  const int W = s * (cols + 1), H = s * (rows + 1);
  std::vector<std::uint8_t> px(static_cast<std::size_t>(W) * H, 255);
  auto put = [&](int x, int y, std::uint8_t v) {
    if (x >= 0 && x < W && y >= 0 && y < H) px[static_cast<std::size_t>(y) * W + x] = v;
  };
  auto draw = [&](char c, int x0, int y0) {
    const char* gl = glyph(c);
    for (int r = 0; r < 5; ++r)
      for (int k = 0; k < 3; ++k)
        if ((gl[r] - '0') & (4 >> k))
          for (int dy = 0; dy < g; ++dy)
            for (int dx = 0; dx < g; ++dx) put(x0 + k * g + dx, y0 + r * g + dy, 0);
  };
  for (int j = 0; j < cols; ++j) draw(in[std::size_t(j)], s * (j + 1) + 4, 2);
  for (int i = 0; i < rows; ++i) draw(out[std::size_t(i)], 4, s * (i + 1) + 2);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      const auto v = static_cast<std::uint8_t>(255.0 * (1.0 - std::clamp<double>(A(i, j), 0, 1)) + 0.5);
      for (int y = 1; y < s; ++y)  // 1-pixel white grid lines
        for (int x = 1; x < s; ++x) put(s * (j + 1) + x, s * (i + 1) + y, v);
    }
  examples::write_png(path, W, H, 1, px);
}

// The same as text: one row per output character, shade by weight.
void print_map(const Matrix<Scalar>& A, const std::string& in, const std::string& out) {
  static const char shades[] = " .:-=+*#%@";
  std::printf("      ");
  for (char c : in) std::printf("%c ", c);
  std::printf("\n");
  for (Index i = 0; i < A.rows(); ++i) {
    const char o = out[std::size_t(i)];
    std::printf("  %s  ", o == '$' ? "$" : std::string(1, o).c_str());
    for (Index j = 0; j < A.cols(); ++j) {
      const int k = std::min(9, static_cast<int>(A(i, j) * 10.0f));
      std::printf("%c ", shades[k]);
    }
    std::printf("\n");
  }
}

// ---- training -------------------------------------------------------------------------------

template <template <typename> class Score>
heed::Seq2Seq<Scalar, Score> gru(heed::Generator& gen) {
  return heed::Seq2Seq<Scalar, Score>(
      {.src_vocab = Index(3 + kSrcChars.size()), .tgt_vocab = Index(3 + kTgtChars.size()),
       .embed_dim = 32, .enc_hidden = 64, .dec_hidden = 128, .attention_dim = 64,
       .pad_id = kPad, .bos_id = kBos, .eos_id = kEos},
      gen);
}

// make_model(gen) builds the model after the data, from the same generator.
template <class MakeModel>
int run_with(const Args& a, MakeModel&& make_model) {
  heed::Generator gen(a.seed);
  // Every date of 1950-2049, shuffled; the first 2,000 are the held-out dates.
  std::vector<Date> dates;
  for (int y = 1950; y <= 2049; ++y)
    for (int m = 1; m <= 12; ++m)
      for (int d = 1; d <= days_in(y, m); ++d) dates.push_back({y, m, d});
  shuffle(dates, gen);
  const std::size_t n_test = 2000;
  std::vector<Sample> test, train;
  for (std::size_t i = 0; i < n_test; ++i) test.push_back(render(dates[i], static_cast<int>(gen.below(kFormats))));
  for (Index i = 0; i < a.train; ++i) {
    const Date& dt = dates[n_test + gen.below(dates.size() - n_test)];
    train.push_back(render(dt, static_cast<int>(gen.below(kFormats))));
  }
  std::printf("dates: %zu training examples (from %zu dates), %zu held-out (disjoint dates), "
              "%d formats; e.g. \"%s\" -> %s\n",
              train.size(), dates.size() - n_test, test.size(), kFormats, test[0].text.c_str(),
              test[0].iso.c_str());

  auto model = make_model(gen);
  bool projects_keys = false;
  if constexpr (requires { model.projects_keys(); }) projects_keys = model.projects_keys();
  std::printf("model: %s, %ld parameters%s; Adam lr %g, clip 1.0, batch %ld, %s decoding\n",
              model.name().c_str(), static_cast<long>(model.num_parameters()),
              projects_keys ? " (keys projected to the decoder width)" : "", a.lr,
              static_cast<long>(a.batch_size),
              a.beam == 1 ? "greedy" : ("beam " + std::to_string(a.beam)).c_str());
  const std::vector<heed::Parameter<Scalar>> params = model.parameters();
  heed::Adam<Scalar> adam(params, {.lr = static_cast<Scalar>(a.lr)});

  std::vector<std::size_t> order(train.size()), test_order(test.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (std::size_t i = 0; i < test_order.size(); ++i) test_order[i] = i;

  // Held-out exact match (the ISO string and eos); fills the decoded results.
  std::vector<heed::Translation<Scalar>> decoded(test.size());
  auto evaluate = [&]() {
    std::size_t correct = 0;
    for (std::size_t i = 0; i < test.size(); i += 250) {
      const std::size_t end = std::min(test.size(), i + 250);
      const Batch b = make_batch(test, test_order, i, end);
      auto res = model.decode(b.src, b.len, a.beam, 12);
      for (std::size_t r = 0; r < res.size(); ++r) {
        std::string s;
        for (int t : res[r].tokens) s += tgt_char(t);
        correct += s == test[i + r].iso + "$";
        decoded[i + r] = std::move(res[r]);
      }
    }
    return static_cast<double>(correct) / static_cast<double>(test.size());
  };

  // --save / --resume: the model, Adam, the accuracy reached (training stops at 99%) and gen,
  // which shuffles the training order every epoch once it has made the data and the model.
  double acc = 0;  // held-out exact match after the last completed epoch
  examples::TrainingRun run(a);
  run.state().model(model).optimizer(adam).value("accuracy", acc);
  run.setting("model", "--model",
              static_cast<double>(std::find(std::begin(kModels), std::end(kModels), a.model) -
                                  std::begin(kModels)),
              {std::begin(kModels), std::end(kModels)});
  run.setting("score", "--score", score_index(a.score), {std::begin(kScores), std::end(kScores)});
  run.setting("positions", "--positions", a.positions == "learned" ? 1.0 : 0.0,
              {"sinusoidal", "learned"});
  run.setting("train", "--train", static_cast<double>(a.train));
  run.setting("beam", "--beam", static_cast<double>(a.beam));  // decides when 99% is reached
  run.resume([&](int epochs_done) -> heed::Generator& {
    for (int e = 0; e < epochs_done; ++e) shuffle(order, gen);
    return gen;
  });

  const std::size_t B = static_cast<std::size_t>(a.batch_size);
  bool evaluated = false;
  for (int epoch = run.epochs_done + 1; epoch <= a.epochs && acc < 0.99; ++epoch) {
    examples::EpochMeter meter(static_cast<Index>((order.size() + B - 1) / B));
    shuffle(order, gen);
    for (std::size_t i = 0; i < order.size(); i += B) {
      const Batch b = make_batch(train, order, i, std::min(order.size(), i + B));
      adam.zero_grad();
      const Scalar loss = model.forward_train(b.src, b.len, b.tin, b.tout);
      model.backward();
      heed::check_finite(loss, params, adam.step_count() + 1);  // before the update
      heed::clip_grad_norm_(params, Scalar(1));
      adam.step();
      meter.add(loss);
    }
    const double tt = meter.seconds();
    const auto t_eval = std::chrono::steady_clock::now();
    acc = evaluate();
    evaluated = true;
    run.end_epoch(epoch, tt, gen);  // before the line is printed
    std::printf("Epoch [%d/%d], Loss: %.4f, held-out exact match: %.2f%%, time: %.1f s train + %.1f s eval\n",
                epoch, a.epochs, meter.mean_loss(), 100 * acc, tt, examples::seconds_since(t_eval));
    std::fflush(stdout);
  }
  if (!evaluated) acc = evaluate();  // resumed with nothing left to train: decode for the report
  std::printf("%s after %d epoch(s): held-out exact match %.2f%%, %.1f s per training epoch\n",
              acc >= 0.99 ? "reached 99%" : "stopped", run.epochs_done, 100 * acc,
              run.seconds / run.epochs_done);

  // Errors by format.
  std::vector<int> wrong(kFormats, 0), seen(kFormats, 0);
  for (std::size_t i = 0; i < test.size(); ++i) {
    std::string s;
    for (int t : decoded[i].tokens) s += tgt_char(t);
    ++seen[std::size_t(test[i].format)];
    if (s != test[i].iso + "$") {
      ++wrong[std::size_t(test[i].format)];
      if (wrong[std::size_t(test[i].format)] == 1)
        std::printf("  miss: \"%s\" -> %s (expected %s)\n", test[i].text.c_str(), s.c_str(),
                    test[i].iso.c_str());
    }
  }

  // Does the year attend to the year? Share of the attention of the four year output
  // characters on the year's input characters (+-1 character), and how often the most
  // attended input character lies in the year, over the whole held-out set.
  double mass = 0, mass1 = 0, argmax_in = 0, rows = 0;
  for (std::size_t i = 0; i < test.size(); ++i) {
    const Matrix<Scalar>& A = decoded[i].attention;
    const Sample& s = test[i];
    for (Index t = 0; t < std::min<Index>(4, A.rows()); ++t) {
      const auto r = A.row(t);
      mass += r.segment(s.year_begin, s.year_end - s.year_begin).sum();
      const Index lo = std::max(0, s.year_begin - 1), hi = std::min<Index>(A.cols(), s.year_end + 1);
      mass1 += r.segment(lo, hi - lo).sum();
      Index j;
      r.maxCoeff(&j);
      argmax_in += j >= s.year_begin && j < s.year_end;
      rows += 1;
    }
  }
  std::printf("year alignment: %.1f%% of the year outputs' attention on the year's input "
              "characters (%.1f%% within +-1 character); the most attended character is in the "
              "year for %.1f%% -> %s\n",
              100 * mass / rows, 100 * mass1 / rows, 100 * argmax_in / rows,
              mass1 / rows >= 0.5 ? "OK" : "NOT ALIGNED");

  // Maps of a few held-out examples: the first of each of six formats.
  std::filesystem::create_directories(a.maps);
  int written = 0;
  for (const int f : {0, 1, 2, 4, 8, 9}) {
    std::size_t i = 0;
    while (i < test.size() && test[i].format != f) ++i;
    if (i == test.size()) continue;
    std::string out;
    for (int t : decoded[i].tokens) out += tgt_char(t);
    const std::string path = a.maps + "/attention_" + std::to_string(written) + ".png";
    write_map(path, decoded[i].attention, test[i].text, out);
    std::printf("\n\"%s\" -> %s   (%s)\n", test[i].text.c_str(), out.c_str(), path.c_str());
    print_map(decoded[i].attention, test[i].text, out);
    ++written;
  }
  return acc >= 0.99 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  examples::set_threads(a.threads);
  if (a.model == "transformer")
    return run_with(a, [learned = a.positions == "learned"](heed::Generator& gen) {
      return heed::TransformerSeq2Seq<Scalar>(
          {.src_vocab = Index(3 + kSrcChars.size()), .tgt_vocab = Index(3 + kTgtChars.size()),
           .d_model = 64, .nhead = 4, .num_encoder_layers = 2, .num_decoder_layers = 2,
           .dim_feedforward = 256, .dropout = 0.1,
           .positions = learned ? heed::PositionalEncodingKind::learned
                                : heed::PositionalEncodingKind::sinusoidal,
           .max_len = 64, .pad_id = kPad, .bos_id = kBos, .eos_id = kEos},
          gen);
    });
  if (a.score == "dot") return run_with(a, gru<heed::DotProductScore>);
  if (a.score == "general") return run_with(a, gru<heed::GeneralScore>);
  if (a.score == "scaled") return run_with(a, gru<heed::ScaledDotProductScore>);
  return run_with(a, gru<heed::AdditiveScore>);
} catch (const heed::Error& e) {
  return examples::report_error(kUsage, e);
} catch (const std::exception& e) {
  return examples::report_error(kUsage, e);
}
