// The NCCL half of ethos's c10d shim: creates libtorch's ProcessGroupNCCL. Built into its own
// libethos_nccl.so by scripts/build_nccl_shim.sh (it links libtorch_cuda), loaded with dlopen
// after libtorch_cuda.so; the returned process group is then driven by the collective functions of
// the Gloo shim through c10d's virtual Backend interface.

#include "ethos_c10d.h"

#include <chrono>

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

extern "C" __attribute__((visibility("default"))) char* ethos_pg_nccl_new(
    ethos_store* store,
    int rank,
    int size,
    int64_t timeout_ms,
    int device_index,
    ethos_pg** out) {
  if (store == nullptr || out == nullptr) {
    return ethos_c10d_copy_message("ethos nccl shim: null store or out");
  }
  return ethos_c10d_guard([&] {
    // NCCL communicators bind to the current device; one process per device.
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store->store, rank, size, opts);
    *out = new ethos_pg{pg};
  });
}
