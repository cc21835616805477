#include "backbones/pickle_reader.h"

#include <cstring>
#include <unordered_map>

#include "io/error.h"

namespace graft::backbones {
namespace {

const std::pair<const char*, TensorDType> kStorageTypes[] = {
    {"torch.FloatStorage", TensorDType::kF32},  {"torch.DoubleStorage", TensorDType::kF64},
    {"torch.HalfStorage", TensorDType::kF16},   {"torch.BFloat16Storage", TensorDType::kBF16},
    {"torch.LongStorage", TensorDType::kI64},   {"torch.IntStorage", TensorDType::kI32},
    {"torch.ShortStorage", TensorDType::kI16},  {"torch.CharStorage", TensorDType::kI8},
    {"torch.ByteStorage", TensorDType::kU8},    {"torch.BoolStorage", TensorDType::kBool},
};

// Callables that torch.save emits for state dicts and training checkpoints. Each is interpreted
// by graft (never looked up or called); anything else in a checkpoint is refused. Training
// checkpoints (nnU-Net's among them) also hold the device they trained on and NumPy scalars in
// their logs, which become a string and plain numbers.
const char* const kAllowedCallables[] = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_parameter",
    "torch.device",
    "numpy.dtype",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    // Protocol 2, torch.save's default, has no bytes opcode: Python writes bytes as
    // _codecs.encode(text, "latin1").
    "_codecs.encode",
};

// The bytes a latin-1 string stands for, from its UTF-8 text; false when a character is above
// U+00FF.
bool latin1_bytes(const std::string& utf8, std::string* bytes) {
  bytes->clear();
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    const auto lead = static_cast<unsigned char>(utf8[i]);
    if (lead < 0x80) {
      bytes->push_back(static_cast<char>(lead));
    } else if ((lead == 0xC2 || lead == 0xC3) && i + 1 < utf8.size()) {
      const auto next = static_cast<unsigned char>(utf8[++i]);
      bytes->push_back(static_cast<char>(((lead & 0x03) << 6) | (next & 0x3F)));
    } else {
      return false;
    }
  }
  return true;
}


PyRef make(PyValue::Kind kind) {
  auto value = std::make_shared<PyValue>();
  value->kind = kind;
  return value;
}

// A NumPy scalar's value from its dtype code ("f8", "<i4", ...) and raw little-endian bytes; None
// for types without a plain value (strings, complex, datetimes).
PyRef numpy_scalar(const std::string& code, const std::string& bytes) {
  std::string type = code;
  if (!type.empty() && (type[0] == '<' || type[0] == '|' || type[0] == '=')) type.erase(0, 1);
  auto value = make(PyValue::Kind::kNone);
  auto raw = [&](auto sample) {
    std::memcpy(&sample, bytes.data(), sizeof sample);
    return sample;
  };
  const auto width = bytes.size();
  if (type.size() != 2 || static_cast<std::size_t>(type[1] - '0') != width) return value;
  if (type[0] == 'f' && width == 8) value->kind = PyValue::Kind::kFloat, value->float_value = raw(double{});
  if (type[0] == 'f' && width == 4) value->kind = PyValue::Kind::kFloat, value->float_value = raw(float{});
  if (type[0] == 'b' && width == 1) value->kind = PyValue::Kind::kBool, value->bool_value = bytes[0] != 0;
  if (type[0] == 'i' || type[0] == 'u') {
    value->kind = PyValue::Kind::kInt;
    if (width == 1) value->int_value = type[0] == 'i' ? raw(std::int8_t{}) : raw(std::uint8_t{});
    if (width == 2) value->int_value = type[0] == 'i' ? raw(std::int16_t{}) : raw(std::uint16_t{});
    if (width == 4) value->int_value = type[0] == 'i' ? raw(std::int32_t{}) : raw(std::uint32_t{});
    if (width == 8) value->int_value = static_cast<std::int64_t>(raw(std::uint64_t{}));
  }
  return value;
}

class Unpickler {
 public:
  Unpickler(const std::uint8_t* data, std::size_t size, const PersistentLoader& loader,
            const std::string& source)
      : data_(data), size_(size), loader_(loader), source_(source) {}

  PyRef run(std::size_t* consumed) {
    while (true) {
      const std::uint8_t opcode = byte();
      switch (opcode) {
        case 0x80: byte(); break;                 // PROTO
        case 0x95: skip(8); break;                // FRAME
        case '.': {                               // STOP
          *consumed = position_;
          if (stack_.empty()) fail("pickle ends with an empty stack");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case 'N': push(make(PyValue::Kind::kNone)); break;
        case 0x88: case 0x89: {                   // NEWTRUE, NEWFALSE
          auto value = make(PyValue::Kind::kBool);
          value->bool_value = opcode == 0x88;
          push(value);
          break;
        }
        case 'J': push_int(static_cast<std::int32_t>(little<std::uint32_t>())); break;  // BININT
        case 'K': push_int(byte()); break;                                              // BININT1
        case 'M': push_int(little<std::uint16_t>()); break;                             // BININT2
        case 0x8a: {                              // LONG1
          const std::uint8_t length = byte();
          if (length > 8) {
            // Only torch's legacy magic number is this long; keep it as text, it is never used
            // as a number.
            auto value = make(PyValue::Kind::kBytes);
            value->text.assign(reinterpret_cast<const char*>(take(length)), length);
            push(value);
            break;
          }
          std::int64_t number = 0;
          const std::uint8_t* bytes = take(length);
          for (int i = length - 1; i >= 0; --i) number = (number << 8) | bytes[i];
          if (length > 0 && length < 8 && (bytes[length - 1] & 0x80)) number -= std::int64_t{1} << (8 * length);
          push_int(number);
          break;
        }
        case 'G': {                               // BINFLOAT (big-endian double)
          std::uint8_t raw[8];
          std::memcpy(raw, take(8), 8);
          std::uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | raw[i];
          auto value = make(PyValue::Kind::kFloat);
          std::memcpy(&value->float_value, &bits, 8);
          push(value);
          break;
        }
        case 'X': push_text(PyValue::Kind::kString, little<std::uint32_t>()); break;  // BINUNICODE
        case 0x8c: push_text(PyValue::Kind::kString, byte()); break;                 // SHORT_BINUNICODE
        case 'T': push_text(PyValue::Kind::kString, little<std::uint32_t>()); break; // BINSTRING
        case 'U': push_text(PyValue::Kind::kString, byte()); break;                  // SHORT_BINSTRING
        case 'B': push_text(PyValue::Kind::kBytes, little<std::uint32_t>()); break;  // BINBYTES
        case 'C': push_text(PyValue::Kind::kBytes, byte()); break;                   // SHORT_BINBYTES
        case '}': push(make(PyValue::Kind::kDict)); break;
        case ']': push(make(PyValue::Kind::kList)); break;
        case ')': push(make(PyValue::Kind::kTuple)); break;
        case 't': {                               // TUPLE
          auto value = make(PyValue::Kind::kTuple);
          value->items = pop_to_mark();
          push(value);
          break;
        }
        case 0x85: case 0x86: case 0x87: {        // TUPLE1..3
          const std::size_t count = opcode - 0x84;
          auto value = make(PyValue::Kind::kTuple);
          value->items.resize(count);
          for (std::size_t i = count; i-- > 0;) value->items[i] = pop();
          push(value);
          break;
        }
        case 'a': {                               // APPEND
          PyRef item = pop();
          list_top()->items.push_back(item);
          break;
        }
        case 'e': {                               // APPENDS
          std::vector<PyRef> items = pop_to_mark();
          auto& list = list_top()->items;
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 's': {                               // SETITEM
          PyRef value = pop();
          PyRef key = pop();
          dict_top()->entries.emplace_back(key, value);
          break;
        }
        case 'u': {                               // SETITEMS
          std::vector<PyRef> items = pop_to_mark();
          if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
          PyValue* dict = dict_top();
          for (std::size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'q': memo_[byte()] = top(); break;                           // BINPUT
        case 'r': memo_[little<std::uint32_t>()] = top(); break;          // LONG_BINPUT
        case 0x94: memo_[static_cast<std::uint32_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': push(memo(byte())); break;                              // BINGET
        case 'j': push(memo(little<std::uint32_t>())); break;             // LONG_BINGET
        case 'c': {                               // GLOBAL "module\nname\n"
          std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {                              // STACK_GLOBAL
          PyRef name = pop(), module = pop();
          if (name->kind != PyValue::Kind::kString || module->kind != PyValue::Kind::kString) {
            fail("STACK_GLOBAL needs two strings");
          }
          push(global(module->text + "." + name->text));
          break;
        }
        case 'R': {                               // REDUCE
          PyRef arguments = pop();
          PyRef callable = pop();
          push(reduce(callable, arguments));
          break;
        }
        case 'b': {                               // BUILD: object state is ignored
          pop();
          const PyValue::Kind kind = top()->kind;
          if (kind != PyValue::Kind::kDict && kind != PyValue::Kind::kTensor && kind != PyValue::Kind::kNumpyDtype) {
            fail("BUILD on a value that is not a dict, tensor or NumPy dtype");
          }
          break;
        }
        case 'Q': {                               // BINPERSID
          PyRef id = pop();
          push(loader_(id));
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", opcode);
          fail(std::string("pickle opcode ") + hex +
               " is not allowed (graft loads only tensors, containers and plain values)");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(source_ + ": checkpoint pickle at byte " + std::to_string(position_) + ": " + why);
  }
  const std::uint8_t* take(std::size_t count) {
    if (count > size_ - position_) fail("unexpected end of data");
    const std::uint8_t* at = data_ + position_;
    position_ += count;
    return at;
  }
  void skip(std::size_t count) { take(count); }
  std::uint8_t byte() { return *take(1); }
  template <typename T>
  T little() {
    T value = 0;
    const std::uint8_t* bytes = take(sizeof(T));
    for (std::size_t i = sizeof(T); i-- > 0;) value = static_cast<T>((value << 8) | bytes[i]);
    return value;
  }
  std::string line() {
    std::string text;
    while (true) {
      const char ch = static_cast<char>(byte());
      if (ch == '\n') return text;
      text.push_back(ch);
      if (text.size() > 256) fail("GLOBAL name too long");
    }
  }
  void push(PyRef value) { stack_.push_back(std::move(value)); }
  void push_int(std::int64_t number) {
    auto value = make(PyValue::Kind::kInt);
    value->int_value = number;
    push(value);
  }
  void push_text(PyValue::Kind kind, std::uint32_t length) {
    auto value = make(kind);
    value->text.assign(reinterpret_cast<const char*>(take(length)), length);
    push(value);
  }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    PyRef value = stack_.back();
    stack_.pop_back();
    return value;
  }
  const PyRef& top() const {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  PyValue* list_top() {
    if (top()->kind != PyValue::Kind::kList) fail("APPEND to a value that is not a list");
    return top().get();
  }
  PyValue* dict_top() {
    if (top()->kind != PyValue::Kind::kDict) fail("SETITEM on a value that is not a dict");
    return top().get();
  }
  PyRef memo(std::uint32_t key) {
    const auto found = memo_.find(key);
    if (found == memo_.end()) fail("memo key " + std::to_string(key) + " was never stored");
    return found->second;
  }
  PyRef global(const std::string& name) {
    TensorDType dtype;
    bool allowed = storage_dtype_from_global(name, &dtype);
    for (const char* callable : kAllowedCallables) allowed |= name == callable;
    if (!allowed) {
      fail("refers to '" + name +
           "', which graft refuses to load (only tensors, containers and plain values)");
    }
    auto value = make(PyValue::Kind::kGlobal);
    value->text = name;
    return value;
  }
  PyRef reduce(const PyRef& callable, const PyRef& arguments) {
    if (callable->kind != PyValue::Kind::kGlobal || arguments->kind != PyValue::Kind::kTuple) {
      fail("REDUCE needs a global and a tuple");
    }
    const std::string& name = callable->text;
    const auto& args = arguments->items;
    if (name == "collections.OrderedDict") return make(PyValue::Kind::kDict);
    if (name == "_codecs.encode") {
      auto bytes = make(PyValue::Kind::kBytes);
      if (args.size() != 2 || args[0]->kind != PyValue::Kind::kString || args[1]->kind != PyValue::Kind::kString ||
          args[1]->text != "latin1" || !latin1_bytes(args[0]->text, &bytes->text)) {
        fail("bad arguments to _codecs.encode (only latin1 bytes are read)");
      }
      return bytes;
    }
    if (name == "torch.device") {
      if (args.empty() || args[0]->kind != PyValue::Kind::kString) fail("bad torch.device");
      auto device = make(PyValue::Kind::kString);
      device->text = args[0]->text;
      if (args.size() > 1 && args[1]->kind == PyValue::Kind::kInt) device->text += ":" + std::to_string(args[1]->int_value);
      return device;
    }
    if (name == "numpy.dtype") {
      if (args.empty() || args[0]->kind != PyValue::Kind::kString) fail("bad numpy.dtype");
      auto dtype = make(PyValue::Kind::kNumpyDtype);
      dtype->text = args[0]->text;
      return dtype;
    }
    if (name == "numpy.core.multiarray.scalar" || name == "numpy._core.multiarray.scalar") {
      if (args.size() != 2 || args[0]->kind != PyValue::Kind::kNumpyDtype ||
          (args[1]->kind != PyValue::Kind::kBytes && args[1]->kind != PyValue::Kind::kString)) {
        fail("bad arguments to " + name);
      }
      return numpy_scalar(args[0]->text, args[1]->text);
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (args.empty() || args[0]->kind != PyValue::Kind::kTensor) fail("bad _rebuild_parameter");
      return args[0];
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (args.size() < 4 || args[0]->kind != PyValue::Kind::kStorage ||
          args[1]->kind != PyValue::Kind::kInt || args[2]->kind != PyValue::Kind::kTuple ||
          args[3]->kind != PyValue::Kind::kTuple) {
        fail("bad arguments to " + name);
      }
      auto tensor = make(PyValue::Kind::kTensor);
      tensor->storage = args[0];
      tensor->storage_offset = args[1]->int_value;
      for (const auto& n : args[2]->items) {
        if (n->kind != PyValue::Kind::kInt) fail("tensor size is not integers");
        tensor->size.push_back(n->int_value);
      }
      for (const auto& n : args[3]->items) {
        if (n->kind != PyValue::Kind::kInt) fail("tensor stride is not integers");
        tensor->stride.push_back(n->int_value);
      }
      if (tensor->size.size() != tensor->stride.size()) fail("tensor size and stride differ in length");
      return tensor;
    }
    fail("'" + name + "' cannot be called");
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
  const PersistentLoader& loader_;
  std::string source_;
  std::vector<PyRef> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, PyRef> memo_;
};

}  // namespace

bool storage_dtype_from_global(const std::string& name, TensorDType* dtype) {
  for (const auto& [storage_name, storage_dtype] : kStorageTypes) {
    if (name == storage_name) {
      *dtype = storage_dtype;
      return true;
    }
  }
  return false;
}

PyRef unpickle(const std::uint8_t* data, std::size_t size, const PersistentLoader& load_persistent,
               const std::string& source, std::size_t* consumed) {
  Unpickler unpickler(data, size, load_persistent, source);
  return unpickler.run(consumed);
}

TensorData materialize_tensor(const PyValue& tensor, const std::vector<std::uint8_t>& storage_bytes,
                              const std::string& source) {
  TensorData out;
  out.dtype = tensor.storage->storage_dtype;
  out.shape = tensor.size;
  const std::size_t element = tensor_dtype_size(out.dtype);
  const std::int64_t count = out.element_count();
  const std::int64_t storage_elements = static_cast<std::int64_t>(storage_bytes.size() / element);
  // The furthest element the view touches must lie inside the storage.
  std::int64_t last = tensor.storage_offset;
  for (std::size_t d = 0; d < tensor.size.size(); ++d) {
    if (tensor.size[d] < 0 || tensor.stride[d] < 0) throw Error(source + ": negative tensor size or stride");
    if (tensor.size[d] > 0) last += (tensor.size[d] - 1) * tensor.stride[d];
  }
  if (count > 0 && (tensor.storage_offset < 0 || last >= storage_elements)) {
    throw Error(source + ": a tensor view reaches past its storage (" + std::to_string(last) +
                " >= " + std::to_string(storage_elements) + " elements)");
  }
  out.bytes.resize(static_cast<std::size_t>(count) * element);
  bool contiguous = true;
  std::int64_t expected_stride = 1;
  for (std::size_t d = tensor.size.size(); d-- > 0;) {
    if (tensor.size[d] != 1 && tensor.stride[d] != expected_stride) contiguous = false;
    expected_stride *= tensor.size[d];
  }
  if (contiguous) {
    std::memcpy(out.bytes.data(), storage_bytes.data() + tensor.storage_offset * element, out.bytes.size());
    return out;
  }
  std::vector<std::int64_t> index(tensor.size.size(), 0);
  for (std::int64_t linear = 0; linear < count; ++linear) {
    std::int64_t source_element = tensor.storage_offset;
    for (std::size_t d = 0; d < index.size(); ++d) source_element += index[d] * tensor.stride[d];
    std::memcpy(out.bytes.data() + linear * element, storage_bytes.data() + source_element * element, element);
    for (std::size_t d = index.size(); d-- > 0;) {
      if (++index[d] < tensor.size[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace graft::backbones
