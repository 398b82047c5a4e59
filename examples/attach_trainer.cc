// SPDX-License-Identifier: MIT
//
// A C++ trainer attached to a named ring: a few lines of RAII over the C
// API, no new library. Serve a ring first (see attach_trainer.c), then:
//   ./example_attach_trainer_cpp /batchring-demo 100
#include <batchring.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace
{

// The consumer side of a named ring; detaches when it goes out of scope.
class Attached
{
  public:
    explicit Attached(const std::string &name, int timeout_ms = -1)
    {
        int rc = br_attach(&g_, name.c_str(), timeout_ms);
        if (rc)
            throw std::runtime_error("br_attach " + name + ": " + br_err_name(rc) + ": " +
                                     br_last_error(nullptr));
    }
    ~Attached()
    {
        br_close(g_);
    }
    Attached(const Attached &) = delete;
    Attached &operator=(const Attached &) = delete;

    // The next batch, or false after the producer's last epoch.
    bool next(br_batch &b)
    {
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

} // namespace

int main(int argc, char **argv)
{
    const std::string name = argc > 1 ? argv[1] : "/batchring-demo";
    const unsigned long steps = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100;
    try {
        Attached ring(name);
        br_batch b;
        unsigned long step = 0;
        unsigned long long samples = 0;
        while (step < steps && ring.next(b)) {
            samples += b.count; // b.data + b.offsets[i]: sample i, valid until the next call
            step++;
        }
        std::printf("trained %lu steps (%llu samples) on %s\n", step, samples, name.c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
