#include "backbones/checkpoint_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "backbones/pickle_reader.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/zip_archive.h"
#include "io/file_bytes.h"

namespace graft::backbones {
namespace {

std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  const std::uint64_t size = io::file_size_bytes(path);
  std::vector<std::uint8_t> bytes(size);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::uint64_t>(in.gcount()) != size) throw Error(path + ": cannot read file");
  return bytes;
}

template <typename T>
T little(const std::uint8_t* at) {
  T value = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) value = static_cast<T>((value << 8) | at[i]);
  return value;
}

// Where each member of a torch.save zip lies: (offset, size). torch.save stores members
// uncompressed, which lets a storage be read in place.
std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> zip_members(const std::vector<std::uint8_t>& zip,
                                                                           const std::string& path) {
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> members;
  for (const io::ZipMember& member : io::zip_directory(zip, path)) {
    if (member.method != 0) {
      throw Error(path + ": zip member " + member.name + " is compressed (method " + std::to_string(member.method) +
                  "); torch.save writes stored members");
    }
    members[member.name] = {member.data_offset, member.compressed_size};
  }
  return members;
}

// persistent id: ('storage', StorageType, key, location, numel[, view_metadata])
PyRef storage_from_persistent_id(const PyRef& id, const std::string& path) {
  if (id->kind != PyValue::Kind::kTuple || id->items.size() < 5 ||
      id->items[0]->kind != PyValue::Kind::kString || id->items[0]->text != "storage" ||
      id->items[1]->kind != PyValue::Kind::kGlobal || id->items[2]->kind != PyValue::Kind::kString ||
      id->items[4]->kind != PyValue::Kind::kInt) {
    throw Error(path + ": checkpoint has a persistent id that is not a torch storage");
  }
  if (id->items.size() > 5 && id->items[5]->kind != PyValue::Kind::kNone) {
    throw Error(path + ": checkpoint uses storage views (pre-1.0 torch.save); re-save it with a newer PyTorch");
  }
  auto storage = std::make_shared<PyValue>();
  storage->kind = PyValue::Kind::kStorage;
  if (!storage_dtype_from_global(id->items[1]->text, &storage->storage_dtype)) {
    throw Error(path + ": storage type " + id->items[1]->text + " is not supported");
  }
  storage->storage_key = id->items[2]->text;
  storage->storage_elements = id->items[4]->int_value;
  return storage;
}

const PyValue* dict_lookup(const PyValue& dict, const std::string& key) {
  for (const auto& [k, v] : dict.entries) {
    if (k->kind == PyValue::Kind::kString && k->text == key) return v.get();
  }
  return nullptr;
}

// The state dict inside whatever torch.save stored, and the tensors it holds.
std::vector<std::pair<std::string, const PyValue*>> find_state_dict(const PyValue& root,
                                                                     std::vector<std::string>& notes,
                                                                     const std::string& path) {
  const PyValue* dict = &root;
  if (root.kind != PyValue::Kind::kDict) throw Error(path + ": checkpoint does not hold a dict");
  // nnU-Net's trainer saves its network as 'network_weights'.
  for (const char* key : {"state_dict", "model", "state_dict_ema", "model_state_dict", "network_weights"}) {
    const PyValue* inner = dict_lookup(root, key);
    if (inner != nullptr && inner->kind == PyValue::Kind::kDict) {
      dict = inner;
      notes.push_back(std::string("state dict found under '") + key + "'");
      break;
    }
  }
  std::vector<std::pair<std::string, const PyValue*>> tensors;
  std::size_t skipped = 0;
  for (const auto& [key, value] : dict->entries) {
    if (key->kind == PyValue::Kind::kString && value->kind == PyValue::Kind::kTensor) {
      tensors.emplace_back(key->text, value.get());
    } else {
      ++skipped;
    }
  }
  if (tensors.empty()) throw Error(path + ": checkpoint holds no tensors (no state_dict found)");
  if (skipped > 0) notes.push_back(std::to_string(skipped) + " non-tensor entries ignored");
  // DataParallel's 'module.' and torch.compile's '_orig_mod.' wrap every name.
  for (const std::string prefix : {"module.", "_orig_mod."}) {
    bool all_prefixed = true;
    for (const auto& [name, value] : tensors) all_prefixed &= name.rfind(prefix, 0) == 0;
    if (!all_prefixed) continue;
    for (auto& [name, value] : tensors) name.erase(0, prefix.size());
    notes.push_back("'" + prefix + "' prefix stripped");
  }
  return tensors;
}

// A pickled value as JSON: tuples as arrays, dicts with string or integer keys as objects,
// tensors and bytes left out (null).
nlohmann::json json_from_py(const PyValue& value, int depth) {
  if (depth > 64) return nullptr;
  switch (value.kind) {
    case PyValue::Kind::kBool: return value.bool_value;
    case PyValue::Kind::kInt: return value.int_value;
    case PyValue::Kind::kFloat: return value.float_value;
    case PyValue::Kind::kString: return value.text;
    case PyValue::Kind::kList:
    case PyValue::Kind::kTuple: {
      nlohmann::json items = nlohmann::json::array();
      for (const auto& item : value.items) items.push_back(json_from_py(*item, depth + 1));
      return items;
    }
    case PyValue::Kind::kDict: {
      nlohmann::json entries = nlohmann::json::object();
      for (const auto& [key, item] : value.entries) {
        if (key->kind == PyValue::Kind::kString) entries[key->text] = json_from_py(*item, depth + 1);
        if (key->kind == PyValue::Kind::kInt) entries[std::to_string(key->int_value)] = json_from_py(*item, depth + 1);
      }
      return entries;
    }
    default: return nullptr;
  }
}

// The checkpoint's other top-level entries (a trainer's epoch, settings, ...), as JSON.
nlohmann::json other_values(const PyValue& root) {
  nlohmann::json values = nlohmann::json::object();
  if (root.kind != PyValue::Kind::kDict) return values;
  for (const auto& [key, item] : root.entries) {
    if (key->kind != PyValue::Kind::kString || item->kind == PyValue::Kind::kTensor) continue;
    bool holds_state_dict = false;
    if (item->kind == PyValue::Kind::kDict) {
      for (const auto& [inner_key, inner] : item->entries) holds_state_dict |= inner->kind == PyValue::Kind::kTensor;
    }
    if (!holds_state_dict) values[key->text] = json_from_py(*item, 0);
  }
  return values;
}

CheckpointFile read_torch_zip(const std::vector<std::uint8_t>& zip, const std::string& path) {
  const auto members = zip_members(zip, path);
  std::string prefix;
  for (const auto& [name, where] : members) {
    if (name.size() >= 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0) prefix = name.substr(0, name.size() - 8);
  }
  if (prefix.empty()) throw Error(path + ": zip file has no data.pkl (not a torch.save file)");
  const auto& [pickle_at, pickle_size] = members.at(prefix + "data.pkl");
  std::vector<PyRef> storages;
  const PersistentLoader loader = [&](const PyRef& id) {
    storages.push_back(storage_from_persistent_id(id, path));
    return storages.back();
  };
  std::size_t consumed = 0;
  const PyRef root = unpickle(zip.data() + pickle_at, pickle_size, loader, path, &consumed);
  CheckpointFile file;
  file.format = "torch-zip";
  file.values = other_values(*root);
  std::map<std::string, std::vector<std::uint8_t>> storage_bytes;
  for (const auto& [name, tensor] : find_state_dict(*root, file.notes, path)) {
    const std::string& key = tensor->storage->storage_key;
    if (!storage_bytes.count(key)) {
      const auto found = members.find(prefix + "data/" + key);
      if (found == members.end()) throw Error(path + ": storage " + key + " of " + name + " is missing");
      const auto [at, size] = found->second;
      storage_bytes[key].assign(zip.begin() + static_cast<std::ptrdiff_t>(at),
                                zip.begin() + static_cast<std::ptrdiff_t>(at + size));
    }
    file.tensors.emplace_back(name, materialize_tensor(*tensor, storage_bytes[key], path + " (" + name + ")"));
  }
  return file;
}

CheckpointFile read_torch_legacy(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  std::size_t at = 0, consumed = 0;
  const PersistentLoader no_storages = [&](const PyRef&) -> PyRef {
    throw Error(path + ": legacy header holds a storage");
  };
  const PyRef magic = unpickle(bytes.data(), bytes.size(), no_storages, path, &consumed);
  if (magic->kind != PyValue::Kind::kBytes || magic->text.size() != 10) {
    throw Error(path + ": not a torch.save file (legacy magic number missing)");
  }
  at += consumed;
  const PyRef protocol = unpickle(bytes.data() + at, bytes.size() - at, no_storages, path, &consumed);
  at += consumed;
  if (protocol->kind != PyValue::Kind::kInt || protocol->int_value != 1001) {
    throw Error(path + ": legacy torch.save protocol " + std::to_string(protocol->int_value) + " is not 1001");
  }
  unpickle(bytes.data() + at, bytes.size() - at, no_storages, path, &consumed);  // sys_info
  at += consumed;
  std::map<std::string, PyRef> storages;
  const PersistentLoader loader = [&](const PyRef& id) {
    PyRef storage = storage_from_persistent_id(id, path);
    auto [found, inserted] = storages.emplace(storage->storage_key, storage);
    return found->second;
  };
  const PyRef root = unpickle(bytes.data() + at, bytes.size() - at, loader, path, &consumed);
  at += consumed;
  const PyRef keys = unpickle(bytes.data() + at, bytes.size() - at, no_storages, path, &consumed);
  at += consumed;
  if (keys->kind != PyValue::Kind::kList) throw Error(path + ": legacy storage key list is missing");
  // Storages follow in key order, each as an 8-byte element count and its raw bytes.
  std::map<std::string, std::vector<std::uint8_t>> storage_bytes;
  for (const auto& key : keys->items) {
    if (at + 8 > bytes.size()) throw Error(path + ": file ends inside the storages (truncated?)");
    const std::uint64_t elements = little<std::uint64_t>(&bytes[at]);
    at += 8;
    const auto found = storages.find(key->text);
    if (found == storages.end()) throw Error(path + ": storage " + key->text + " was never referenced");
    const std::uint64_t size = elements * tensor_dtype_size(found->second->storage_dtype);
    if (size > bytes.size() - at) throw Error(path + ": file ends inside storage " + key->text + " (truncated?)");
    storage_bytes[key->text].assign(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                                    bytes.begin() + static_cast<std::ptrdiff_t>(at + size));
    at += size;
  }
  CheckpointFile file;
  file.format = "torch-legacy";
  file.values = other_values(*root);
  for (const auto& [name, tensor] : find_state_dict(*root, file.notes, path)) {
    const auto found = storage_bytes.find(tensor->storage->storage_key);
    if (found == storage_bytes.end()) throw Error(path + ": storage of " + name + " is missing");
    file.tensors.emplace_back(name, materialize_tensor(*tensor, found->second, path + " (" + name + ")"));
  }
  return file;
}

const std::pair<const char*, TensorDType> kSafetensorsTypes[] = {
    {"F32", TensorDType::kF32}, {"F64", TensorDType::kF64}, {"F16", TensorDType::kF16},
    {"BF16", TensorDType::kBF16}, {"I64", TensorDType::kI64}, {"I32", TensorDType::kI32},
    {"I16", TensorDType::kI16}, {"I8", TensorDType::kI8}, {"U8", TensorDType::kU8},
    {"BOOL", TensorDType::kBool}};

CheckpointFile read_safetensors(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  const std::uint64_t header_size = little<std::uint64_t>(bytes.data());
  if (header_size > bytes.size() - 8 || header_size > (100u << 20)) {
    throw Error(path + ": safetensors header length " + std::to_string(header_size) + " is invalid");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_size));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": safetensors header is not JSON (" + std::string(e.what()) + ")");
  }
  const std::uint64_t data_start = 8 + header_size;
  CheckpointFile file;
  file.format = "safetensors";
  std::vector<std::pair<std::uint64_t, std::string>> order;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      if (item.value().is_object()) file.values = item.value();
      continue;
    }
    order.emplace_back(item.value().at("data_offsets").at(0).get<std::uint64_t>(), item.key());
  }
  std::sort(order.begin(), order.end());
  for (const auto& [begin_offset, name] : order) {
    const auto& entry = header[name];
    TensorData tensor;
    const std::string dtype = entry.value("dtype", "");
    bool known = false;
    for (const auto& [type_name, type] : kSafetensorsTypes) {
      if (dtype == type_name) tensor.dtype = type, known = true;
    }
    if (!known) throw Error(path + ": tensor " + name + " has unsupported dtype '" + dtype + "'");
    tensor.shape = entry.at("shape").get<std::vector<std::int64_t>>();
    const auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
    if (offsets.size() != 2 || offsets[1] < offsets[0] || data_start + offsets[1] > bytes.size() ||
        offsets[1] - offsets[0] != static_cast<std::uint64_t>(tensor.element_count()) * tensor_dtype_size(tensor.dtype)) {
      throw Error(path + ": tensor " + name + " has data_offsets that do not fit its shape or the file");
    }
    tensor.bytes.assign(bytes.begin() + static_cast<std::ptrdiff_t>(data_start + offsets[0]),
                        bytes.begin() + static_cast<std::ptrdiff_t>(data_start + offsets[1]));
    file.tensors.emplace_back(name, std::move(tensor));
  }
  return file;
}

}  // namespace

CheckpointFile read_checkpoint(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path);
  if (bytes.size() < 8) throw Error(path + ": file is too short to be a checkpoint");
  try {
    if (bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4) return read_torch_zip(bytes, path);
    if (bytes[0] == 0x80 && bytes[1] >= 2 && bytes[1] <= 5) return read_torch_legacy(bytes, path);
    if (bytes[8] == '{') return read_safetensors(bytes, path);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": malformed checkpoint (" + std::string(e.what()) + ")");
  }
  throw Error(path + ": not a checkpoint graft reads (torch.save zip or legacy, or safetensors)");
}

void write_safetensors(const StateDict& tensors, const std::string& path,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  for (const auto& [key, value] : metadata) header["__metadata__"][key] = value;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    header[name] = {{"dtype", tensor_dtype_name(tensor.dtype)},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + tensor.bytes.size()}}};
    offset += tensor.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  io::write_atomically(path, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    if (!out) throw Error(path + ": cannot open for writing");
    std::uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<std::uint8_t>(text.size() >> (8 * i));
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, tensor] : tensors) {
      out.write(reinterpret_cast<const char*>(tensor.bytes.data()), static_cast<std::streamsize>(tensor.bytes.size()));
    }
    out.close();
    if (!out) throw Error(path + ": write failed (disk full?)");
  });
}

}  // namespace graft::backbones
