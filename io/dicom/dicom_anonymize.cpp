#include "io/dicom/dicom_anonymize.h"

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <map>
#include <string>

#include "io/error.h"

namespace graft::io {
namespace {

// The action codes of PS3.15 Table E.1-1 (Basic Profile column). Where the standard leaves a
// choice (X/Z, X/D, Z/D, X/Z/D) it depends on the attribute's type in each IOD, which a
// dataset-wide pass cannot know; resolve_choice() below picks the option that can never break
// conformance.
enum class ProfileAction {
  kRemove,              // X
  kEmpty,               // Z
  kDummy,               // D
  kRemapUid,            // U
  kRemoveOrEmpty,       // X/Z
  kRemoveOrDummy,       // X/D
  kEmptyOrDummy,        // Z/D
  kRemoveEmptyOrDummy,  // X/Z/D
};

struct ProfileRule {
  DcmTagKey tag;
  ProfileAction action;
};

// PS3.15 Table E.1-1 (2023 edition), Basic Profile column, sorted by tag; tags missing from
// DCMTK 3.6.7's dictionary are left out.
// Deviations, on purpose: Patient's Name and Patient ID are Z in the table; graft gives them a
// dummy/pseudonym (which Z permits) because PACS and viewers file images by them. Attributes whose
// action is X/Z/U* (Referenced Image Sequence, Source Image Sequence, ...) are absent: they are
// kept and walked, and the UIDs inside them are remapped by their own rules. Curve (50xx) and
// overlay (60xx) groups are removed wholesale in anonymize_item().
const ProfileRule kBasicProfileRules[] = {
    {DCM_ReferencedSOPInstanceUIDInFile, ProfileAction::kRemapUid},
    {DCM_InstanceCreationDate, ProfileAction::kRemoveOrDummy},
    {DCM_InstanceCreationTime, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_InstanceCreatorUID, ProfileAction::kRemapUid},
    {DCM_InstanceCoercionDateTime, ProfileAction::kRemove},
    {DCM_AcquisitionUID, ProfileAction::kRemapUid},
    {DCM_SOPInstanceUID, ProfileAction::kRemapUid},
    {DCM_PyramidUID, ProfileAction::kRemapUid},
    {DCM_StudyDate, ProfileAction::kEmpty},
    {DCM_SeriesDate, ProfileAction::kRemoveOrDummy},
    {DCM_AcquisitionDate, ProfileAction::kRemoveOrEmpty},
    {DCM_ContentDate, ProfileAction::kEmptyOrDummy},
    {DCM_RETIRED_OverlayDate, ProfileAction::kRemove},
    {DCM_RETIRED_CurveDate, ProfileAction::kRemove},
    {DCM_AcquisitionDateTime, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_StudyTime, ProfileAction::kEmpty},
    {DCM_SeriesTime, ProfileAction::kRemoveOrDummy},
    {DCM_AcquisitionTime, ProfileAction::kRemoveOrEmpty},
    {DCM_ContentTime, ProfileAction::kEmptyOrDummy},
    {DCM_RETIRED_OverlayTime, ProfileAction::kRemove},
    {DCM_RETIRED_CurveTime, ProfileAction::kRemove},
    {DCM_AccessionNumber, ProfileAction::kEmpty},
    {DCM_RetrieveAETitle, ProfileAction::kRemove},
    {DCM_StationAETitle, ProfileAction::kRemove},
    {DCM_FailedSOPInstanceUIDList, ProfileAction::kRemapUid},
    {DCM_InstitutionName, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_InstitutionAddress, ProfileAction::kRemove},
    {DCM_InstitutionCodeSequence, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_ReferringPhysicianName, ProfileAction::kEmpty},
    {DCM_ReferringPhysicianAddress, ProfileAction::kRemove},
    {DCM_ReferringPhysicianTelephoneNumbers, ProfileAction::kRemove},
    {DCM_ReferringPhysicianIdentificationSequence, ProfileAction::kRemove},
    {DCM_ConsultingPhysicianName, ProfileAction::kEmpty},
    {DCM_ConsultingPhysicianIdentificationSequence, ProfileAction::kRemove},
    {DCM_ContextGroupExtensionCreatorUID, ProfileAction::kRemapUid},
    {DCM_TimezoneOffsetFromUTC, ProfileAction::kRemove},
    {DCM_RETIRED_NetworkID, ProfileAction::kRemove},
    {DCM_StationName, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_StudyDescription, ProfileAction::kRemove},
    {DCM_SeriesDescription, ProfileAction::kRemove},
    {DCM_InstitutionalDepartmentName, ProfileAction::kRemove},
    {DCM_InstitutionalDepartmentTypeCodeSequence, ProfileAction::kRemove},
    {DCM_PhysiciansOfRecord, ProfileAction::kRemove},
    {DCM_PhysiciansOfRecordIdentificationSequence, ProfileAction::kRemove},
    {DCM_PerformingPhysicianName, ProfileAction::kRemove},
    {DCM_PerformingPhysicianIdentificationSequence, ProfileAction::kRemove},
    {DCM_NameOfPhysiciansReadingStudy, ProfileAction::kRemove},
    {DCM_PhysiciansReadingStudyIdentificationSequence, ProfileAction::kRemove},
    {DCM_OperatorsName, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_OperatorIdentificationSequence, ProfileAction::kRemoveOrDummy},
    {DCM_AdmittingDiagnosesDescription, ProfileAction::kRemove},
    {DCM_AdmittingDiagnosesCodeSequence, ProfileAction::kRemove},
    {DCM_ReferencedStudySequence, ProfileAction::kRemoveOrEmpty},
    {DCM_ReferencedPerformedProcedureStepSequence, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_ReferencedPatientSequence, ProfileAction::kRemove},
    {DCM_ReferencedSOPInstanceUID, ProfileAction::kRemapUid},
    {DCM_TransactionUID, ProfileAction::kRemapUid},
    {DCM_DerivationDescription, ProfileAction::kRemove},
    {DCM_IrradiationEventUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_IdentifyingComments, ProfileAction::kRemove},
    {DCM_CreatorVersionUID, ProfileAction::kRemapUid},
    {DCM_PatientName, ProfileAction::kDummy},
    {DCM_PatientID, ProfileAction::kDummy},
    {DCM_IssuerOfPatientID, ProfileAction::kRemove},
    {DCM_IssuerOfPatientIDQualifiersSequence, ProfileAction::kRemove},
    {DCM_PatientBirthDate, ProfileAction::kEmpty},
    {DCM_PatientBirthTime, ProfileAction::kRemove},
    {DCM_PatientBirthDateInAlternativeCalendar, ProfileAction::kRemove},
    {DCM_PatientDeathDateInAlternativeCalendar, ProfileAction::kRemove},
    {DCM_PatientAlternativeCalendar, ProfileAction::kRemove},
    {DCM_PatientSex, ProfileAction::kEmpty},
    {DCM_PatientInsurancePlanCodeSequence, ProfileAction::kRemove},
    {DCM_PatientPrimaryLanguageCodeSequence, ProfileAction::kRemove},
    {DCM_PatientPrimaryLanguageModifierCodeSequence, ProfileAction::kRemove},
    {DCM_RETIRED_OtherPatientIDs, ProfileAction::kRemove},
    {DCM_OtherPatientNames, ProfileAction::kRemove},
    {DCM_OtherPatientIDsSequence, ProfileAction::kRemove},
    {DCM_PatientBirthName, ProfileAction::kRemove},
    {DCM_PatientAge, ProfileAction::kRemove},
    {DCM_PatientSize, ProfileAction::kRemove},
    {DCM_PatientWeight, ProfileAction::kRemove},
    {DCM_PatientAddress, ProfileAction::kRemove},
    {DCM_RETIRED_InsurancePlanIdentification, ProfileAction::kRemove},
    {DCM_PatientMotherBirthName, ProfileAction::kRemove},
    {DCM_MilitaryRank, ProfileAction::kRemove},
    {DCM_BranchOfService, ProfileAction::kRemove},
    {DCM_RETIRED_MedicalRecordLocator, ProfileAction::kRemove},
    {DCM_ReferencedPatientPhotoSequence, ProfileAction::kRemove},
    {DCM_MedicalAlerts, ProfileAction::kRemove},
    {DCM_Allergies, ProfileAction::kRemove},
    {DCM_CountryOfResidence, ProfileAction::kRemove},
    {DCM_RegionOfResidence, ProfileAction::kRemove},
    {DCM_PatientTelephoneNumbers, ProfileAction::kRemove},
    {DCM_PatientTelecomInformation, ProfileAction::kRemove},
    {DCM_EthnicGroup, ProfileAction::kRemove},
    {DCM_Occupation, ProfileAction::kRemove},
    {DCM_SmokingStatus, ProfileAction::kRemove},
    {DCM_AdditionalPatientHistory, ProfileAction::kRemove},
    {DCM_PregnancyStatus, ProfileAction::kRemove},
    {DCM_LastMenstrualDate, ProfileAction::kRemove},
    {DCM_PatientReligiousPreference, ProfileAction::kRemove},
    {DCM_PatientSexNeutered, ProfileAction::kRemoveOrEmpty},
    {DCM_ResponsiblePerson, ProfileAction::kRemove},
    {DCM_ResponsibleOrganization, ProfileAction::kRemove},
    {DCM_PatientComments, ProfileAction::kRemove},
    {DCM_ClinicalTrialSponsorName, ProfileAction::kDummy},
    {DCM_ClinicalTrialProtocolID, ProfileAction::kDummy},
    {DCM_ClinicalTrialProtocolName, ProfileAction::kEmpty},
    {DCM_ClinicalTrialSiteID, ProfileAction::kEmpty},
    {DCM_ClinicalTrialSiteName, ProfileAction::kEmpty},
    {DCM_ClinicalTrialSubjectID, ProfileAction::kDummy},
    {DCM_ClinicalTrialSubjectReadingID, ProfileAction::kDummy},
    {DCM_ClinicalTrialTimePointID, ProfileAction::kEmpty},
    {DCM_ClinicalTrialCoordinatingCenterName, ProfileAction::kEmpty},
    {DCM_ClinicalTrialProtocolEthicsCommitteeName, ProfileAction::kDummy},
    {DCM_ContrastBolusAgent, ProfileAction::kEmptyOrDummy},
    {DCM_DeviceSerialNumber, ProfileAction::kRemoveEmptyOrDummy},
    {DCM_DeviceUID, ProfileAction::kRemapUid},
    {DCM_PlateID, ProfileAction::kRemove},
    {DCM_GeneratorID, ProfileAction::kRemove},
    {DCM_CassetteID, ProfileAction::kRemove},
    {DCM_GantryID, ProfileAction::kRemove},
    {DCM_UniqueDeviceIdentifier, ProfileAction::kRemove},
    {DCM_UDISequence, ProfileAction::kRemove},
    {DCM_ManufacturerDeviceClassUID, ProfileAction::kRemapUid},
    {DCM_DateOfSecondaryCapture, ProfileAction::kRemove},
    {DCM_TimeOfSecondaryCapture, ProfileAction::kRemove},
    {DCM_ProtocolName, ProfileAction::kRemoveOrDummy},
    {DCM_ContrastBolusStartTime, ProfileAction::kRemove},
    {DCM_ContrastBolusStopTime, ProfileAction::kRemove},
    {DCM_RadiopharmaceuticalStartTime, ProfileAction::kRemove},
    {DCM_RadiopharmaceuticalStopTime, ProfileAction::kRemove},
    {DCM_RadiopharmaceuticalStartDateTime, ProfileAction::kRemove},
    {DCM_RadiopharmaceuticalStopDateTime, ProfileAction::kRemove},
    {DCM_DateOfLastCalibration, ProfileAction::kRemove},
    {DCM_TimeOfLastCalibration, ProfileAction::kRemove},
    {DCM_DateTimeOfLastCalibration, ProfileAction::kRemove},
    {DCM_AcquisitionDeviceProcessingDescription, ProfileAction::kRemoveOrDummy},
    {DCM_TargetUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_AcquisitionComments, ProfileAction::kRemove},
    {DCM_DetectorID, ProfileAction::kRemoveOrDummy},
    {DCM_DateOfLastDetectorCalibration, ProfileAction::kRemoveOrDummy},
    {DCM_TimeOfLastDetectorCalibration, ProfileAction::kRemoveOrDummy},
    {DCM_FrameAcquisitionDateTime, ProfileAction::kRemoveOrDummy},
    {DCM_FrameReferenceDateTime, ProfileAction::kRemoveOrDummy},
    {DCM_AcquisitionProtocolDescription, ProfileAction::kRemove},
    {DCM_StartAcquisitionDateTime, ProfileAction::kRemoveOrDummy},
    {DCM_EndAcquisitionDateTime, ProfileAction::kRemoveOrDummy},
    {DCM_DecayCorrectionDateTime, ProfileAction::kRemoveOrDummy},
    {DCM_InstructionPerformedDateTime, ProfileAction::kEmptyOrDummy},
    {DCM_RequestedSeriesDescription, ProfileAction::kRemove},
    {DCM_ContributionDescription, ProfileAction::kRemove},
    {DCM_StudyInstanceUID, ProfileAction::kRemapUid},
    {DCM_SeriesInstanceUID, ProfileAction::kRemapUid},
    {DCM_StudyID, ProfileAction::kEmpty},
    {DCM_FrameOfReferenceUID, ProfileAction::kRemapUid},
    {DCM_SynchronizationFrameOfReferenceUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_ModifyingDeviceID, ProfileAction::kRemove},
    {DCM_RETIRED_ModifyingDeviceManufacturer, ProfileAction::kRemove},
    {DCM_RETIRED_ModifiedImageDescription, ProfileAction::kRemove},
    {DCM_ImageComments, ProfileAction::kRemove},
    {DCM_FrameComments, ProfileAction::kRemove},
    {DCM_ConcatenationUID, ProfileAction::kRemapUid},
    {DCM_DimensionOrganizationUID, ProfileAction::kRemapUid},
    {DCM_PaletteColorLookupTableUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_LargePaletteColorLookupTableUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_ImagePresentationComments, ProfileAction::kRemove},
    {DCM_RETIRED_StudyIDIssuer, ProfileAction::kRemove},
    {DCM_RETIRED_StudyVerifiedDate, ProfileAction::kRemove},
    {DCM_RETIRED_StudyVerifiedTime, ProfileAction::kRemove},
    {DCM_RETIRED_StudyReadDate, ProfileAction::kRemove},
    {DCM_RETIRED_StudyReadTime, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledStudyStartDate, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledStudyStartTime, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledStudyStopDate, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledStudyStopTime, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledStudyLocation, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledStudyLocationAETitle, ProfileAction::kRemove},
    {DCM_RETIRED_ReasonForStudy, ProfileAction::kRemove},
    {DCM_RequestingPhysicianIdentificationSequence, ProfileAction::kRemove},
    {DCM_RequestingPhysician, ProfileAction::kRemove},
    {DCM_RequestingService, ProfileAction::kRemove},
    {DCM_RequestingServiceCodeSequence, ProfileAction::kRemove},
    {DCM_RETIRED_StudyArrivalDate, ProfileAction::kRemove},
    {DCM_RETIRED_StudyArrivalTime, ProfileAction::kRemove},
    {DCM_RETIRED_StudyCompletionDate, ProfileAction::kRemove},
    {DCM_RETIRED_StudyCompletionTime, ProfileAction::kRemove},
    {DCM_RequestedProcedureDescription, ProfileAction::kRemoveOrEmpty},
    {DCM_ReasonForVisit, ProfileAction::kRemove},
    {DCM_ReasonForVisitCodeSequence, ProfileAction::kRemove},
    {DCM_RequestedContrastAgent, ProfileAction::kRemove},
    {DCM_RETIRED_StudyComments, ProfileAction::kRemove},
    {DCM_ReferencedPatientAliasSequence, ProfileAction::kRemove},
    {DCM_AdmissionID, ProfileAction::kRemove},
    {DCM_RETIRED_IssuerOfAdmissionID, ProfileAction::kRemove},
    {DCM_IssuerOfAdmissionIDSequence, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledAdmissionDate, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledAdmissionTime, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledDischargeDate, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledDischargeTime, ProfileAction::kRemove},
    {DCM_RETIRED_ScheduledPatientInstitutionResidence, ProfileAction::kRemove},
    {DCM_AdmittingDate, ProfileAction::kRemove},
    {DCM_AdmittingTime, ProfileAction::kRemove},
    {DCM_RETIRED_DischargeDate, ProfileAction::kRemove},
    {DCM_RETIRED_DischargeTime, ProfileAction::kRemove},
    {DCM_RETIRED_DischargeDiagnosisDescription, ProfileAction::kRemove},
    {DCM_SpecialNeeds, ProfileAction::kRemove},
    {DCM_ServiceEpisodeID, ProfileAction::kRemove},
    {DCM_RETIRED_IssuerOfServiceEpisodeID, ProfileAction::kRemove},
    {DCM_ServiceEpisodeDescription, ProfileAction::kRemove},
    {DCM_IssuerOfServiceEpisodeIDSequence, ProfileAction::kRemove},
    {DCM_CurrentPatientLocation, ProfileAction::kRemove},
    {DCM_PatientInstitutionResidence, ProfileAction::kRemove},
    {DCM_PatientState, ProfileAction::kRemove},
    {DCM_VisitComments, ProfileAction::kRemove},
    {DCM_ScheduledStationAETitle, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepStartDate, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepStartTime, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepEndDate, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepEndTime, ProfileAction::kRemove},
    {DCM_ScheduledPerformingPhysicianName, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepDescription, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepID, ProfileAction::kRemove},
    {DCM_ScheduledPerformingPhysicianIdentificationSequence, ProfileAction::kRemove},
    {DCM_ScheduledStationName, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepLocation, ProfileAction::kRemove},
    {DCM_PreMedication, ProfileAction::kRemove},
    {DCM_PerformedStationAETitle, ProfileAction::kRemove},
    {DCM_PerformedStationName, ProfileAction::kRemove},
    {DCM_PerformedLocation, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepStartDate, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepStartTime, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepEndDate, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepEndTime, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepID, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepDescription, ProfileAction::kRemove},
    {DCM_RequestAttributesSequence, ProfileAction::kRemove},
    {DCM_CommentsOnThePerformedProcedureStep, ProfileAction::kRemove},
    {DCM_ContainerIdentifier, ProfileAction::kDummy},
    {DCM_IssuerOfTheContainerIdentifierSequence, ProfileAction::kEmpty},
    {DCM_SpecimenIdentifier, ProfileAction::kDummy},
    {DCM_SpecimenUID, ProfileAction::kRemapUid},
    {DCM_AcquisitionContextSequence, ProfileAction::kRemoveOrEmpty},
    {DCM_IssuerOfTheSpecimenIdentifierSequence, ProfileAction::kEmpty},
    {DCM_SpecimenPreparationSequence, ProfileAction::kEmpty},
    {DCM_RequestedProcedureID, ProfileAction::kRemove},
    {DCM_ReasonForTheRequestedProcedure, ProfileAction::kRemove},
    {DCM_PatientTransportArrangements, ProfileAction::kRemove},
    {DCM_RequestedProcedureLocation, ProfileAction::kRemove},
    {DCM_ReasonForRequestedProcedureCodeSequence, ProfileAction::kRemove},
    {DCM_NamesOfIntendedRecipientsOfResults, ProfileAction::kRemove},
    {DCM_IntendedRecipientsOfResultsIdentificationSequence, ProfileAction::kRemove},
    {DCM_PersonIdentificationCodeSequence, ProfileAction::kDummy},
    {DCM_PersonAddress, ProfileAction::kRemove},
    {DCM_PersonTelephoneNumbers, ProfileAction::kRemove},
    {DCM_PersonTelecomInformation, ProfileAction::kRemove},
    {DCM_RequestedProcedureComments, ProfileAction::kRemove},
    {DCM_RETIRED_ReasonForTheImagingServiceRequest, ProfileAction::kRemove},
    {DCM_IssueDateOfImagingServiceRequest, ProfileAction::kRemove},
    {DCM_IssueTimeOfImagingServiceRequest, ProfileAction::kRemove},
    {DCM_OrderEnteredBy, ProfileAction::kRemove},
    {DCM_OrderEntererLocation, ProfileAction::kRemove},
    {DCM_OrderCallbackPhoneNumber, ProfileAction::kRemove},
    {DCM_OrderCallbackTelecomInformation, ProfileAction::kRemove},
    {DCM_PlacerOrderNumberImagingServiceRequest, ProfileAction::kEmpty},
    {DCM_FillerOrderNumberImagingServiceRequest, ProfileAction::kEmpty},
    {DCM_ImagingServiceRequestComments, ProfileAction::kRemove},
    {DCM_ConfidentialityConstraintOnPatientDataDescription, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepStartDateTime, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepExpirationDateTime, ProfileAction::kRemove},
    {DCM_ScheduledProcedureStepModificationDateTime, ProfileAction::kRemove},
    {DCM_RETIRED_ReferencedGeneralPurposeScheduledProcedureStepTransactionUID,
     ProfileAction::kRemapUid},
    {DCM_ScheduledStationNameCodeSequence, ProfileAction::kRemove},
    {DCM_ScheduledStationGeographicLocationCodeSequence, ProfileAction::kRemove},
    {DCM_PerformedStationNameCodeSequence, ProfileAction::kRemove},
    {DCM_PerformedStationGeographicLocationCodeSequence, ProfileAction::kRemove},
    {DCM_ScheduledHumanPerformersSequence, ProfileAction::kRemove},
    {DCM_ActualHumanPerformersSequence, ProfileAction::kRemove},
    {DCM_HumanPerformerOrganization, ProfileAction::kRemove},
    {DCM_HumanPerformerName, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepStartDateTime, ProfileAction::kRemove},
    {DCM_PerformedProcedureStepEndDateTime, ProfileAction::kRemove},
    {DCM_VerifyingOrganization, ProfileAction::kDummy},
    {DCM_VerificationDateTime, ProfileAction::kDummy},
    {DCM_ObservationDateTime, ProfileAction::kRemoveOrDummy},
    {DCM_ObservationStartDateTime, ProfileAction::kRemove},
    {DCM_VerifyingObserverSequence, ProfileAction::kDummy},
    {DCM_VerifyingObserverName, ProfileAction::kDummy},
    {DCM_AuthorObserverSequence, ProfileAction::kRemove},
    {DCM_ParticipantSequence, ProfileAction::kRemove},
    {DCM_CustodialOrganizationSequence, ProfileAction::kRemove},
    {DCM_VerifyingObserverIdentificationCodeSequence, ProfileAction::kEmpty},
    {DCM_DateTime, ProfileAction::kDummy},
    {DCM_Date, ProfileAction::kDummy},
    {DCM_Time, ProfileAction::kDummy},
    {DCM_PersonName, ProfileAction::kDummy},
    {DCM_UID, ProfileAction::kRemapUid},
    {DCM_ReferencedDateTime, ProfileAction::kDummy},
    {DCM_TextValue, ProfileAction::kRemove},
    {DCM_ObservationUID, ProfileAction::kRemapUid},
    {DCM_ContentSequence, ProfileAction::kDummy},
    {DCM_RETIRED_TemplateExtensionOrganizationUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_TemplateExtensionCreatorUID, ProfileAction::kRemapUid},
    {DCM_TrackingUID, ProfileAction::kRemapUid},
    {DCM_SourceFrameOfReferenceUID, ProfileAction::kRemapUid},
    {DCM_GraphicAnnotationSequence, ProfileAction::kDummy},
    {DCM_PresentationCreationDate, ProfileAction::kRemove},
    {DCM_PresentationCreationTime, ProfileAction::kRemove},
    {DCM_ContentCreatorName, ProfileAction::kEmptyOrDummy},
    {DCM_ContentCreatorIdentificationCodeSequence, ProfileAction::kRemove},
    {DCM_FiducialUID, ProfileAction::kRemapUid},
    {DCM_PresentationDisplayCollectionUID, ProfileAction::kRemapUid},
    {DCM_PresentationSequenceCollectionUID, ProfileAction::kRemapUid},
    {DCM_StorageMediaFileSetUID, ProfileAction::kRemapUid},
    {DCM_IconImageSequence, ProfileAction::kRemove},
    {DCM_RETIRED_TopicTitle, ProfileAction::kRemove},
    {DCM_RETIRED_TopicSubject, ProfileAction::kRemove},
    {DCM_RETIRED_TopicAuthor, ProfileAction::kRemove},
    {DCM_RETIRED_TopicKeywords, ProfileAction::kRemove},
    {DCM_DigitalSignatureUID, ProfileAction::kRemove},
    {DCM_CertificateOfSigner, ProfileAction::kDummy},
    {DCM_CertifiedTimestamp, ProfileAction::kRemove},
    {DCM_ReferencedDigitalSignatureSequence, ProfileAction::kRemove},
    {DCM_ReferencedSOPInstanceMACSequence, ProfileAction::kRemove},
    {DCM_MAC, ProfileAction::kRemove},
    {DCM_ModifiedAttributesSequence, ProfileAction::kRemove},
    {DCM_OriginalAttributesSequence, ProfileAction::kRemove},
    {DCM_ReferencedFrameOfReferenceUID, ProfileAction::kRemapUid},
    {DCM_RETIRED_RelatedFrameOfReferenceUID, ProfileAction::kRemapUid},
    {DCM_DoseReferenceUID, ProfileAction::kRemapUid},
    {DCM_ReviewerName, ProfileAction::kRemoveOrEmpty},
    {DCM_RETIRED_Arbitrary, ProfileAction::kRemove},
    {DCM_RETIRED_TextComments, ProfileAction::kRemove},
    {DCM_RETIRED_ResultsIDIssuer, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationRecorder, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationTranscriber, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationText, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationAuthor, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationApproverSequence, ProfileAction::kRemove},
    {DCM_RETIRED_PhysicianApprovingInterpretation, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationDiagnosisDescription, ProfileAction::kRemove},
    {DCM_RETIRED_ResultsDistributionListSequence, ProfileAction::kRemove},
    {DCM_RETIRED_DistributionName, ProfileAction::kRemove},
    {DCM_RETIRED_DistributionAddress, ProfileAction::kRemove},
    {DCM_RETIRED_InterpretationIDIssuer, ProfileAction::kRemove},
    {DCM_RETIRED_Impressions, ProfileAction::kRemove},
    {DCM_RETIRED_ResultsComments, ProfileAction::kRemove},
    {DCM_DigitalSignaturesSequence, ProfileAction::kRemove},
    {DCM_DataSetTrailingPadding, ProfileAction::kRemove},
};

const std::map<DcmTagKey, ProfileAction>& rules_by_tag() {
  static const std::map<DcmTagKey, ProfileAction> rules = [] {
    std::map<DcmTagKey, ProfileAction> by_tag;
    for (const ProfileRule& rule : kBasicProfileRules) by_tag.emplace(rule.tag, rule.action);
    return by_tag;
  }();
  return rules;
}

// Emptying (X/Z) keeps a Type 2 attribute present and is allowed for Type 3; a dummy (X/D, Z/D,
// X/Z/D) also satisfies Type 1 (e.g. Device Serial Number in the Enhanced General Equipment
// Module of a SEG, Content Date of enhanced images).
ProfileAction resolve_choice(ProfileAction action) {
  switch (action) {
    case ProfileAction::kRemoveOrEmpty:
      return ProfileAction::kEmpty;
    case ProfileAction::kRemoveOrDummy:
    case ProfileAction::kEmptyOrDummy:
    case ProfileAction::kRemoveEmptyOrDummy:
      return ProfileAction::kDummy;
    default:
      return action;
  }
}

// Curves (50xx,eeee) and overlays (60xx,eeee), xx even: removing only the Overlay Data the table
// names would leave an overlay description with no bits, so the whole group goes.
bool is_curve_or_overlay_group(Uint16 group) {
  const Uint16 base = group & 0xFF00;
  return (base == 0x5000 || base == 0x6000) && (group % 2 == 0);
}

std::string element_name(const DcmElement& element) {
  DcmTag tag = element.getTag();
  return std::string(tag.getTagName()) + " " + tag.toString().c_str();
}

void check(const OFCondition& status, const DcmElement& element, const std::string& what) {
  if (status.bad()) {
    throw Error("DICOM de-identification: cannot " + what + " " + element_name(element) + " (" +
                status.text() + ")");
  }
}

void remap_uids(DcmElement& element, DicomUidMap& uid_map) {
  OFString values;
  if (element.getOFStringArray(values).bad() || values.empty()) return;
  // UI may hold several values; each one is remapped on its own so lists stay aligned.
  const std::string original(values.c_str());
  std::string remapped;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = original.find('\\', start);
    remapped += uid_map.replacement_for(original.substr(start, end - start));
    if (end == std::string::npos) break;
    remapped += '\\';
    start = end + 1;
  }
  check(element.putOFStringArray(remapped.c_str()), element, "replace UID of");
}

void replace_with_dummy(DcmElement& element, DicomUidMap& uid_map) {
  if (element.getTag() == DCM_PatientID) {
    OFString original;
    element.getOFStringArray(original);
    check(element.putString(uid_map.patient_pseudonym_for(original.c_str()).c_str()), element,
          "replace");
    return;
  }
  const char* dummy = "ANONYMIZED";
  switch (element.ident()) {
    // Family name only, with its delimiter: a bare "ANONYMOUS" reads as the retired ACR-NEMA
    // name form to validators.
    case EVR_PN:
      dummy = "ANONYMOUS^";
      break;
    case EVR_DA:
      dummy = "19000101";
      break;
    case EVR_TM:
      dummy = "000000";
      break;
    case EVR_DT:
      dummy = "19000101000000";
      break;
    case EVR_AS:
      dummy = "000D";
      break;
    case EVR_UI:
      remap_uids(element, uid_map);
      return;
    case EVR_IS:
    case EVR_DS:
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
    case EVR_FL:
    case EVR_FD:
    case EVR_UV:
    case EVR_SV:
      dummy = "0";
      break;
    // A dummy item would need dummy content of its own; an empty sequence or value carries none.
    case EVR_SQ:
    case EVR_OB:
    case EVR_OW:
    case EVR_OF:
    case EVR_OD:
    case EVR_OL:
    case EVR_OV:
    case EVR_UN:
      check(element.clear(), element, "empty");
      return;
    default:
      break;
  }
  check(element.putString(dummy), element, "replace");
}

void anonymize_item(DcmItem& item, DicomUidMap& uid_map) {
  const auto& rules = rules_by_tag();
  // Backwards, so removing element i leaves the indices still to visit unchanged.
  for (long i = static_cast<long>(item.card()) - 1; i >= 0; --i) {
    DcmElement* element = item.getElement(static_cast<unsigned long>(i));
    if (element == nullptr) continue;
    const DcmTagKey tag = element->getTag();
    if (tag.isPrivate() || is_curve_or_overlay_group(tag.getGroup())) {
      delete item.remove(static_cast<unsigned long>(i));
      continue;
    }
    const auto rule = rules.find(tag);
    if (rule == rules.end()) {
      if (element->ident() == EVR_SQ) {
        auto* sequence = static_cast<DcmSequenceOfItems*>(element);
        for (unsigned long n = 0; n < sequence->card(); ++n) {
          anonymize_item(*sequence->getItem(n), uid_map);
        }
      }
      continue;
    }
    switch (resolve_choice(rule->second)) {
      case ProfileAction::kRemove:
        delete item.remove(static_cast<unsigned long>(i));
        break;
      case ProfileAction::kEmpty:
        check(element->clear(), *element, "empty");
        break;
      case ProfileAction::kDummy:
        replace_with_dummy(*element, uid_map);
        break;
      case ProfileAction::kRemapUid:
        remap_uids(*element, uid_map);
        break;
      default:
        break;
    }
  }
}

void check_dataset(const OFCondition& status, const std::string& what) {
  if (status.bad())
    throw Error("DICOM de-identification: cannot " + what + " (" + status.text() + ")");
}

// PS3.15 E.1.1: a de-identified instance says so and names the profile, as text and as the
// CID 7050 code, keeping any earlier de-identification it records.
void record_deidentification(DcmItem& dataset) {
  const std::string method = "Basic Application Confidentiality Profile (graft)";
  check_dataset(dataset.putAndInsertString(DCM_PatientIdentityRemoved, "YES"),
                "set PatientIdentityRemoved");
  OFString earlier_methods;
  dataset.findAndGetOFStringArray(DCM_DeidentificationMethod, earlier_methods);
  std::string methods = earlier_methods.c_str();
  if (methods.find(method) == std::string::npos) {
    methods = methods.empty() ? method : methods + "\\" + method;
  }
  check_dataset(dataset.putAndInsertOFStringArray(DCM_DeidentificationMethod, methods.c_str()),
                "set DeidentificationMethod");

  const char* const kBasicProfileCode = "113100";
  for (unsigned long n = 0;; ++n) {
    DcmItem* code = nullptr;
    if (dataset
            .findAndGetSequenceItem(DCM_DeidentificationMethodCodeSequence, code,
                                    static_cast<signed long>(n))
            .bad()) {
      break;
    }
    OFString value;
    code->findAndGetOFString(DCM_CodeValue, value);
    if (value == kBasicProfileCode) return;
  }
  DcmItem* code = nullptr;
  check_dataset(dataset.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, code,
                                                 -2 /* append */),
                "add DeidentificationMethodCodeSequence item");
  check_dataset(code->putAndInsertString(DCM_CodeValue, kBasicProfileCode), "set CodeValue");
  check_dataset(code->putAndInsertString(DCM_CodingSchemeDesignator, "DCM"),
                "set CodingSchemeDesignator");
  check_dataset(
      code->putAndInsertString(DCM_CodeMeaning, "Basic Application Confidentiality Profile"),
      "set CodeMeaning");
}

}  // namespace

std::string DicomUidMap::replacement_for(const std::string& original_uid) {
  if (original_uid.empty()) return original_uid;
  auto found = replacement_uids_.find(original_uid);
  if (found != replacement_uids_.end()) return found->second;
  char fresh_uid[100];
  dcmGenerateUniqueIdentifier(fresh_uid, SITE_INSTANCE_UID_ROOT);
  return replacement_uids_.emplace(original_uid, fresh_uid).first->second;
}

std::string DicomUidMap::patient_pseudonym_for(const std::string& original_patient_id) {
  auto found = patient_pseudonyms_.find(original_patient_id);
  if (found != patient_pseudonyms_.end()) return found->second;
  const std::string pseudonym = "ANONYMOUS-" + std::to_string(patient_pseudonyms_.size() + 1);
  return patient_pseudonyms_.emplace(original_patient_id, pseudonym).first->second;
}

void anonymize_dataset(DcmItem& dataset, DicomUidMap& uid_map) {
  anonymize_item(dataset, uid_map);
  record_deidentification(dataset);
}

}  // namespace graft::io
