// The Gloo half of ethos's c10d shim: libtorch's own TCPStore, PrefixStore and ProcessGroupGloo
// behind a C ABI (see ethos_c10d.h). Compiled by crates/ethos-dist/build.rs with USE_DISTRIBUTED
// and USE_C10D_GLOO, without which the c10d headers compile to nothing.

#include "ethos_c10d.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace {

char* null_argument(const char* what) {
  return ethos_c10d_copy_message(std::string("ethos c10d shim: null ") + what);
}

// Waits for a collective; c10d reports failures (a peer that closed its connection, a timeout)
// by throwing from wait().
void wait_for(const c10::intrusive_ptr<c10d::Work>& work) {
  work->wait();
}

} // namespace

extern "C" {

void ethos_c10d_free_string(char* message) {
  std::free(message);
}

char* ethos_store_tcp_new(
    const char* host,
    uint16_t port,
    int is_server,
    int64_t timeout_ms,
    ethos_store** out) {
  if (host == nullptr || out == nullptr) {
    return null_argument("host or out");
  }
  return ethos_c10d_guard([&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server != 0;
    // ethos runs its own join barrier over the store, which can name the ranks that are missing.
    opts.waitWorkers = false;
    opts.numWorkers = std::nullopt;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    *out = new ethos_store{store};
  });
}

char* ethos_store_clone(ethos_store* store, ethos_store** out) {
  if (store == nullptr || out == nullptr) {
    return null_argument("store or out");
  }
  return ethos_c10d_guard([&] { *out = new ethos_store{store->store->clone()}; });
}

char* ethos_store_prefix(ethos_store* store, const char* prefix, ethos_store** out) {
  if (store == nullptr || prefix == nullptr || out == nullptr) {
    return null_argument("store, prefix or out");
  }
  return ethos_c10d_guard([&] {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store->store);
    *out = new ethos_store{prefixed};
  });
}

void ethos_store_free(ethos_store* store) {
  delete store;
}

char* ethos_store_set(ethos_store* store, const char* key, const uint8_t* data, size_t len) {
  if (store == nullptr || key == nullptr || (data == nullptr && len > 0)) {
    return null_argument("store, key or data");
  }
  return ethos_c10d_guard([&] {
    std::vector<uint8_t> value(data, data + len);
    store->store->set(std::string(key), value);
  });
}

char* ethos_store_add(ethos_store* store, const char* key, int64_t delta, int64_t* value) {
  if (store == nullptr || key == nullptr || value == nullptr) {
    return null_argument("store, key or value");
  }
  return ethos_c10d_guard([&] { *value = store->store->add(std::string(key), delta); });
}

char* ethos_store_check(ethos_store* store, const char* key, int* present) {
  if (store == nullptr || key == nullptr || present == nullptr) {
    return null_argument("store, key or present");
  }
  return ethos_c10d_guard([&] {
    *present = store->store->check({std::string(key)}) ? 1 : 0;
  });
}

char* ethos_pg_gloo_new(
    ethos_store* store,
    int rank,
    int size,
    int64_t timeout_ms,
    const char* interface_name,
    const char* hostname,
    int threads,
    ethos_pg** out) {
  if (store == nullptr || out == nullptr) {
    return null_argument("store or out");
  }
  return ethos_c10d_guard([&] {
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    if (interface_name != nullptr && interface_name[0] != '\0') {
      opts->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForInterface(std::string(interface_name)));
    } else if (hostname != nullptr && hostname[0] != '\0') {
      opts->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname(std::string(hostname)));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    if (threads > 0) {
      opts->threads = threads;
    }
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store->store, rank, size, opts);
    *out = new ethos_pg{pg};
  });
}

void ethos_pg_free(ethos_pg* pg) {
  delete pg;
}

char* ethos_pg_allreduce_sum(ethos_pg* pg, at::Tensor* tensor) {
  if (pg == nullptr || tensor == nullptr) {
    return null_argument("process group or tensor");
  }
  return ethos_c10d_guard([&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    wait_for(pg->backend->allreduce(tensors, opts));
  });
}

char* ethos_pg_broadcast(ethos_pg* pg, at::Tensor* tensor, int root) {
  if (pg == nullptr || tensor == nullptr) {
    return null_argument("process group or tensor");
  }
  return ethos_c10d_guard([&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.rootTensor = 0;
    wait_for(pg->backend->broadcast(tensors, opts));
  });
}

char* ethos_pg_allgather(ethos_pg* pg, at::Tensor* input, at::Tensor** outputs, int count) {
  if (pg == nullptr || input == nullptr || outputs == nullptr || count < 1) {
    return null_argument("process group, input or outputs");
  }
  return ethos_c10d_guard([&] {
    std::vector<at::Tensor> inputs{*input};
    std::vector<std::vector<at::Tensor>> gathered(1);
    for (int i = 0; i < count; ++i) {
      if (outputs[i] == nullptr) {
        throw std::invalid_argument("ethos c10d shim: null output tensor");
      }
      gathered[0].push_back(*outputs[i]);
    }
    wait_for(pg->backend->allgather(gathered, inputs));
  });
}

char* ethos_pg_barrier(ethos_pg* pg) {
  if (pg == nullptr) {
    return null_argument("process group");
  }
  return ethos_c10d_guard([&] { wait_for(pg->backend->barrier()); });
}

} // extern "C"
