#pragma once

#include <cstddef>
#include <map>
#include <string>

// DCMTK stays out of graft's headers: only io/*.cpp sees the library.
class DcmItem;

namespace graft::io {

// Replacement UIDs (and patient pseudonyms) handed out during one de-identification run. The same
// original always gets the same replacement from one map, so a series anonymized with a map and a
// SEG anonymized with the same map still reference each other. Holds originals in memory only;
// nothing here is ever printed or logged.
class DicomUidMap {
 public:
  // A fresh UID the first time `original_uid` is seen, the same one every later time. An empty
  // original stays empty.
  std::string replacement_for(const std::string& original_uid);
  // "ANONYMOUS-1", "ANONYMOUS-2", ... in order of first sight: keeps one patient's studies together
  // without deriving anything from the original ID (a hash of a short ID can be reversed by trying
  // every ID).
  std::string patient_pseudonym_for(const std::string& original_patient_id);
  std::size_t replaced_uid_count() const { return replacement_uids_.size(); }

 private:
  std::map<std::string, std::string> replacement_uids_;
  std::map<std::string, std::string> patient_pseudonyms_;
};

// De-identifies `dataset` in place following the DICOM PS3.15 Annex E Basic Application Level
// Confidentiality Profile: attributes of Table E.1-1 are removed, emptied, replaced by dummies or
// given remapped UIDs (through `uid_map`, so references stay consistent), private attributes are
// removed, sequences are processed recursively, and PatientIdentityRemoved = YES plus the
// De-identification Method (text and code) are added. The File Meta Information is not part of a
// DcmItem; DCMTK regenerates it from the dataset when the file is saved.
void anonymize_dataset(DcmItem& dataset, DicomUidMap& uid_map);

}  // namespace graft::io
