// C ABI of ethos's c10d shim (crates/ethos-dist). Shared by the Gloo shim that is linked into ethos
// and the optional NCCL shim (libethos_nccl.so), so that a process group made by either is driven
// by the same collective functions through c10d's virtual Backend interface.
//
// Every function that can fail returns NULL on success or a malloc'ed error message that the caller
// frees with ethos_c10d_free_string. Tensors are tch's `C_tensor` handles, i.e. `at::Tensor*`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <c10/util/Exception.h>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

struct ethos_store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct ethos_pg {
  c10::intrusive_ptr<c10d::Backend> backend;
};

extern "C" {

void ethos_c10d_free_string(char* message);

char* ethos_store_tcp_new(
    const char* host,
    uint16_t port,
    int is_server,
    int64_t timeout_ms,
    ethos_store** out);
char* ethos_store_clone(ethos_store* store, ethos_store** out);
char* ethos_store_prefix(ethos_store* store, const char* prefix, ethos_store** out);
void ethos_store_free(ethos_store* store);
char* ethos_store_set(ethos_store* store, const char* key, const uint8_t* data, size_t len);
char* ethos_store_add(ethos_store* store, const char* key, int64_t delta, int64_t* value);
char* ethos_store_check(ethos_store* store, const char* key, int* present);

char* ethos_pg_gloo_new(
    ethos_store* store,
    int rank,
    int size,
    int64_t timeout_ms,
    const char* interface_name,
    const char* hostname,
    int threads,
    ethos_pg** out);
// Exported by libethos_nccl.so only (dlopen'ed after libtorch_cuda.so).
char* ethos_pg_nccl_new(
    ethos_store* store,
    int rank,
    int size,
    int64_t timeout_ms,
    int device_index,
    ethos_pg** out);
void ethos_pg_free(ethos_pg* pg);

char* ethos_pg_allreduce_sum(ethos_pg* pg, at::Tensor* tensor);
char* ethos_pg_broadcast(ethos_pg* pg, at::Tensor* tensor, int root);
char* ethos_pg_allgather(ethos_pg* pg, at::Tensor* input, at::Tensor** outputs, int count);
char* ethos_pg_barrier(ethos_pg* pg);

} // extern "C"

// A malloc'ed copy of `message` (freed by ethos_c10d_free_string on the Rust side).
inline char* ethos_c10d_copy_message(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.c_str(), message.size() + 1);
  }
  return out;
}

// The message of the exception being handled, without libtorch's C++ backtrace, malloc'ed.
// Inline so that libethos_nccl.so carries its own copy (the executable exports no symbols).
inline char* ethos_c10d_current_error() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return ethos_c10d_copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return ethos_c10d_copy_message(e.what());
  } catch (...) {
    return ethos_c10d_copy_message("unknown C++ exception");
  }
}

// Runs `body`, turning any C++ exception into an error message for Rust.
template <typename F>
char* ethos_c10d_guard(F&& body) {
  try {
    body();
    return nullptr;
  } catch (...) {
    return ethos_c10d_current_error();
  }
}
