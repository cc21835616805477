#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backbones/tensor_data.h"

namespace graft::backbones {

// A value from a checkpoint's pickle. Only what torch.save writes for tensors, containers and
// plain values can be represented; the reader refuses everything else, and nothing is ever called.
struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kBytes, kList, kTuple, kDict, kGlobal,
                    kStorage, kTensor, kNumpyDtype };
  Kind kind = Kind::kNone;
  bool bool_value = false;
  std::int64_t int_value = 0;
  double float_value = 0.0;
  std::string text;  // string, bytes, "module.name" of a global, or a NumPy dtype's code ("f8")
  std::vector<PyRef> items;                        // list, tuple
  std::vector<std::pair<PyRef, PyRef>> entries;    // dict, in insertion order
  // Storage: its element type, the key its bytes are filed under, and its element count.
  TensorDType storage_dtype = TensorDType::kF32;
  std::string storage_key;
  std::int64_t storage_elements = 0;
  // Tensor: a view of a storage.
  PyRef storage;
  std::int64_t storage_offset = 0;
  std::vector<std::int64_t> size, stride;
};

// Called for each persistent id (torch's storage references); returns the storage value.
using PersistentLoader = std::function<PyRef(const PyRef& persistent_id)>;

// Unpickles one pickle stream starting at data[0]; returns its value and sets *consumed to the
// bytes read (legacy torch files hold several streams back to back). Throws graft::Error naming
// `source` for malformed data, a forbidden global, or an opcode outside the safe set.
PyRef unpickle(const std::uint8_t* data, std::size_t size, const PersistentLoader& load_persistent,
               const std::string& source, std::size_t* consumed);

// A storage type global ("torch.FloatStorage") as a dtype; false when it is not one.
bool storage_dtype_from_global(const std::string& name, TensorDType* dtype);

// Copies a tensor view out of its storage bytes into a contiguous TensorData.
TensorData materialize_tensor(const PyValue& tensor, const std::vector<std::uint8_t>& storage_bytes,
                              const std::string& source);

}  // namespace graft::backbones
