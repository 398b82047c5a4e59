// SPDX-License-Identifier: MIT
//
// A C++ trainer: a few lines of RAII over the C API, no new library.
// Run: ./example_trainer_cpp
#include <batchring.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Owns a generator; closes it (stopping its workers) when it goes out of scope.
class Generator {
  public:
    Generator(br_loader_fn load, void *user, const std::vector<uint64_t> &ids,
              const br_options &opt) {
        int rc = br_open(&g_, load, user, ids.data(), nullptr, ids.size(), &opt);
        if (rc)
            throw std::runtime_error(std::string("br_open: ") + br_last_error(nullptr));
    }
    ~Generator() { br_close(g_); }
    Generator(const Generator &) = delete;
    Generator &operator=(const Generator &) = delete;

    // The next batch, or false at the end of the last epoch.
    bool next(br_batch &b) {
        int rc = br_next(g_, &b);
        if (rc == BR_EOF)
            return false;
        if (rc)
            throw std::runtime_error(std::string(br_err_name(rc)) + ": " + br_last_error(g_));
        return true;
    }

  private:
    br_gen *g_ = nullptr;
};

constexpr size_t kSampleFloats = 256;

// Sample id i is kSampleFloats floats of value i.
int load(br_job *job, void *) {
    auto *out = static_cast<float *>(job->out);
    for (uint32_t i = 0; i < job->count; i++)
        for (size_t k = 0; k < kSampleFloats; k++)
            out[i * kSampleFloats + k] = static_cast<float>(job->ids[i]);
    job->size = job->count * kSampleFloats * sizeof(float);
    return 0;
}

} // namespace

int main() {
    std::vector<uint64_t> ids(10000);
    std::iota(ids.begin(), ids.end(), 0);

    br_options opt;
    br_options_init(&opt);
    opt.batch_size = 100;
    opt.workers = 2;
    opt.slot_bytes = opt.batch_size * kSampleFloats * sizeof(float);
    opt.epochs = 3;

    try {
        Generator gen(load, nullptr, ids, opt);
        br_batch b;
        double sum = 0;
        uint64_t batches = 0;
        while (gen.next(b)) {
            const auto *x = static_cast<const float *>(b.data);
            sum += x[0];
            batches++;
        }
        std::printf("trained on %llu batches (first-sample sum %.0f)\n",
                    static_cast<unsigned long long>(batches), sum);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
