/** A multipart body by hand, so a test can send part of it, stall or stop. */
export function multipart(fields: Record<string, string | Buffer>): { body: Buffer; type: string } {
  const boundary = `----sv${Date.now()}${Math.random().toString(36).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    const file = typeof value !== 'string';
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${name}.nii.gz"` : ''}\r\n${file ? 'Content-Type: application/gzip\r\n' : ''}\r\n`,
      ),
      typeof value === 'string' ? Buffer.from(value) : value,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}
