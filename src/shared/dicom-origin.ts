import { z } from 'zod';

/** The roles a DICOM study fills (a ground-truth mask never comes from the scanner). */
export const DICOM_ROLES = ['dwi', 'adc', 'flair'] as const;
export type DicomRole = (typeof DICOM_ROLES)[number];

/** The patient and study modules, kept only with DICOM_KEEP_PATIENT=true; shown to the case's owner and admins only. */
export const dicomPatientSchema = z.object({
  patientName: z.string().nullable(),
  patientId: z.string().nullable(),
  patientBirthDate: z.string().nullable(),
  patientSex: z.string().nullable(),
  patientAge: z.string().nullable(),
  accessionNumber: z.string().nullable(),
  referringPhysicianName: z.string().nullable(),
  studyDate: z.string().nullable(),
  studyTime: z.string().nullable(),
  studyId: z.string().nullable(),
  studyDescription: z.string().nullable(),
});
export type DicomPatient = z.infer<typeof dicomPatientSchema>;

/** A DICOM-origin case's facts as `cases.byId` returns them. */
export const caseDicomSchema = z.object({
  studyInstanceUid: z.string(),
  frameOfReferenceUid: z.string().nullable(),
  series: z.array(
    z.object({ role: z.enum(DICOM_ROLES), seriesInstanceUid: z.string(), seriesNumber: z.number().nullable(), how: z.string() }),
  ),
  /** Only with DICOM_KEEP_PATIENT=true, and only for the case's owner and admins. */
  patient: dicomPatientSchema.nullable(),
});
export type CaseDicom = z.infer<typeof caseDicomSchema>;
