// The ITK side of itk_formats.h, built as the module libgraft_io_itk.so (itk_module.h).
#include "io/nrrd/itk_formats.h"
#include "io/nrrd/itk_module.h"

#include <itkImageIOBase.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>

#include <cstring>

#include "io/error.h"
#include "io/stderr_silencer.h"

namespace graft::io::itk_module {
namespace {

using itk::IOComponentEnum;

itk::ImageIOBase::Pointer make_io(ItkFormat format) {
  if (format == ItkFormat::kNifti) return itk::NiftiImageIO::New().GetPointer();
  return itk::NrrdImageIO::New().GetPointer();
}

const char* format_name(ItkFormat format) { return format == ItkFormat::kNifti ? "nifti" : "nrrd"; }

DType dtype_from_itk(IOComponentEnum component, const std::string& path) {
  switch (component) {
    case IOComponentEnum::UCHAR: return DType::kU8;
    case IOComponentEnum::CHAR: return DType::kI8;
    case IOComponentEnum::USHORT: return DType::kU16;
    case IOComponentEnum::SHORT: return DType::kI16;
    case IOComponentEnum::UINT: return DType::kU32;
    case IOComponentEnum::INT: return DType::kI32;
    case IOComponentEnum::FLOAT: return DType::kF32;
    case IOComponentEnum::DOUBLE: return DType::kF64;
    default:
      throw Error(path + ": voxel type " +
                  itk::ImageIOBase::GetComponentTypeAsString(component) +
                  " is not supported (use u8..u32, i8..i32, f32 or f64)");
  }
}

IOComponentEnum itk_from_dtype(DType dtype) {
  switch (dtype) {
    case DType::kU8: return IOComponentEnum::UCHAR;
    case DType::kI8: return IOComponentEnum::CHAR;
    case DType::kU16: return IOComponentEnum::USHORT;
    case DType::kI16: return IOComponentEnum::SHORT;
    case DType::kU32: return IOComponentEnum::UINT;
    case DType::kI32: return IOComponentEnum::INT;
    case DType::kF32: return IOComponentEnum::FLOAT;
    case DType::kF64: break;
  }
  return IOComponentEnum::DOUBLE;
}

// ITK stores vector components interleaved (x fastest after the component); graft keeps channels
// as separate planes.
void deinterleave(const std::uint8_t* interleaved, std::uint8_t* planar, std::int64_t voxels,
                  std::int64_t components, std::size_t element_bytes) {
  for (std::int64_t v = 0; v < voxels; ++v) {
    for (std::int64_t c = 0; c < components; ++c) {
      std::memcpy(planar + (c * voxels + v) * element_bytes,
                  interleaved + (v * components + c) * element_bytes, element_bytes);
    }
  }
}

}  // namespace

Image read_itk(const std::string& path, ItkFormat format) {
  try {
    StderrSilencer silence;
    itk::ImageIOBase::Pointer io = make_io(format);
    io->SetFileName(path);
    io->ReadImageInformation();
    const unsigned dims = io->GetNumberOfDimensions();
    if (dims < 1 || dims > 4) {
      throw Error(path + ": " + std::to_string(dims) +
                  " dimensions; graft reads 1 to 3 spatial dimensions plus channels");
    }
    Geometry geometry;
    for (unsigned i = 0; i < std::min(dims, 3u); ++i) {
      geometry.size_xyz[i] = static_cast<std::int64_t>(io->GetDimensions(i));
      geometry.spacing_xyz[i] = io->GetSpacing(i);
      geometry.origin_world[i] = io->GetOrigin(i);
      const std::vector<double> column = io->GetDirection(i);
      for (unsigned r = 0; r < 3; ++r) {
        geometry.direction[r][i] = r < column.size() ? column[r] : (r == i ? 1.0 : 0.0);
      }
    }
    geometry.validate(path);
    const std::int64_t time_points = dims == 4 ? static_cast<std::int64_t>(io->GetDimensions(3)) : 1;
    const std::int64_t components = static_cast<std::int64_t>(io->GetNumberOfComponents());
    if (time_points > 1 && components > 1) {
      throw Error(path + ": 4D images with vector voxels are not supported");
    }
    const DType dtype = dtype_from_itk(io->GetComponentType(), path);
    Image image = Image::uninitialized(dtype, time_points * components, geometry);
    image.metadata().source_format = format_name(format);

    itk::ImageIORegion region(dims);
    for (unsigned i = 0; i < dims; ++i) {
      region.SetIndex(i, 0);
      region.SetSize(i, io->GetDimensions(i));
    }
    io->SetIORegion(region);
    if (components == 1) {
      io->Read(image.bytes());
    } else {
      std::vector<std::uint8_t> interleaved(image.byte_count());
      io->Read(interleaved.data());
      deinterleave(interleaved.data(), image.bytes(), geometry.voxel_count(), components,
                   dtype_size_bytes(dtype));
    }
    return image;
  } catch (const itk::ExceptionObject& e) {
    std::string why = e.GetDescription();
    const auto newline = why.find('\n');
    if (newline != std::string::npos) why.resize(newline);
    throw Error(path + ": cannot read " + format_name(format) + " (" + why + ")");
  } catch (const std::bad_alloc&) {
    throw Error(path + ": not enough memory to read the voxels");
  }
}

void write_itk(const Image& image, const std::string& path, ItkFormat format) {
  const Geometry& geometry = image.geometry();
  if (geometry.frame != Frame::kLPS) {
    throw Error(path + ": " + format_name(format) +
                " stores patient (LPS) geometry; this image is in a map CRS");
  }
  try {
    StderrSilencer silence;
    itk::ImageIOBase::Pointer io = make_io(format);
    const unsigned dims = image.channels() > 1 ? 4 : 3;
    io->SetNumberOfDimensions(dims);
    itk::ImageIORegion region(dims);
    for (unsigned i = 0; i < dims; ++i) {
      const bool spatial = i < 3;
      io->SetDimensions(i, spatial ? geometry.size_xyz[i] : image.channels());
      io->SetSpacing(i, spatial ? geometry.spacing_xyz[i] : 1.0);
      io->SetOrigin(i, spatial ? geometry.origin_world[i] : 0.0);
      std::vector<double> column(dims, 0.0);
      for (unsigned r = 0; r < dims; ++r) {
        column[r] = (spatial && r < 3) ? geometry.direction[r][i] : (r == i ? 1.0 : 0.0);
      }
      io->SetDirection(i, column);
      region.SetIndex(i, 0);
      region.SetSize(i, io->GetDimensions(i));
    }
    io->SetIORegion(region);
    io->SetPixelType(itk::IOPixelEnum::SCALAR);
    io->SetNumberOfComponents(1);
    io->SetComponentType(itk_from_dtype(image.dtype()));
    io->SetFileName(path);
    const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
    io->SetUseCompression(gz || format == ItkFormat::kNrrd);
    io->Write(image.bytes());
  } catch (const itk::ExceptionObject& e) {
    std::string why = e.GetDescription();
    const auto newline = why.find('\n');
    if (newline != std::string::npos) why.resize(newline);
    throw Error(path + ": cannot write " + std::string(format_name(format)) + " (" + why + ")");
  }
}

}  // namespace graft::io::itk_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::itk_module::EntryPoints* graft_io_itk_entry_points() {
  namespace module = graft::io::itk_module;
  static const module::EntryPoints entry_points{module::kEntryPointsVersion, &module::read_itk, &module::write_itk};
  return &entry_points;
}
