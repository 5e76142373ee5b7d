import type { VolumeDescriptor, VolumeRole } from '../../shared/cases.js';
import type { AdcUnit, Affine, DatatypeName } from '../../shared/nifti.js';
import type { VolumeRow } from '../db/tables.js';
import type { VolumeSigner } from './signing.js';

/** The public URL of a signed volume link; the file name at the end tells viewers the format. */
export function volumeUrl(baseUrl: string, token: string, role: string): string {
  return `${baseUrl.replace(/\/$/, '')}/files/v/${token}/${role}.nii.gz`;
}

export interface VolumeLinks {
  signer: VolumeSigner;
  baseUrl: string;
}

/** A file name safe in a URL path and a Content-Disposition header. */
export function safeFileName(name: string): string {
  return (
    name
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 120) || 'volume'
  );
}

/**
 * A stored volume as the API returns it, with a fresh signed URL ending in `<fileName>.nii.gz`,
 * and a download link named `<downloadName>.nii.gz`.
 */
export function toVolumeDescriptor(
  v: VolumeRow,
  role: VolumeRole,
  links: VolumeLinks,
  fileName: string = role,
  downloadName: string = fileName,
): VolumeDescriptor {
  const token = links.signer.sign(v.id);
  return {
    id: v.id,
    role,
    sha256: v.sha256,
    bytes: Number(v.bytes),
    dims: v.dims,
    voxelSizeMm: v.voxel_size_mm,
    datatype: v.datatype as DatatypeName,
    affine: v.affine as Affine,
    frames: v.frames,
    adcUnit: (v.adc_unit as AdcUnit | null) ?? null,
    url: volumeUrl(links.baseUrl, token, fileName),
    downloadUrl: `${volumeUrl(links.baseUrl, token, safeFileName(downloadName))}?download=1`,
  };
}
