/** Bytes in a kibibyte and a mebibyte: every limit in MiB or KiB is converted with these. */
export const KiB = 1024;
export const MiB = 1024 * 1024;
