// ethos's own stand-in declarations for the gloo types that libtorch's ProcessGroupGloo.hpp
// names. The PyPI torch wheel ships that header but not gloo's headers. Every gloo object the
// header uses sits behind a pointer and the ethos shim calls no gloo function, so declaring the
// types (with the virtual members the header overrides or calls) is enough; gloo's code itself
// lives inside libtorch_cpu.so. Written for ethos, not copied from gloo.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {

// Only named in inline members that libtorch compiles (ProcessGroupGloo::setTimeout).
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace rendezvous {

// Base of c10d's GlooStore adapter: the virtual members it overrides.
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(
      const std::vector<std::string>& keys,
      const std::chrono::milliseconds& timeout) = 0;
};

} // namespace rendezvous

namespace transport {

// Held through shared_ptr (Options::devices) and created by libtorch's factory functions.
class Device;

// Held through unique_ptr by send/recv work objects; complete so their members can be destroyed.
class UnboundBuffer {
 public:
  virtual ~UnboundBuffer() = default;
};

} // namespace transport
} // namespace gloo
