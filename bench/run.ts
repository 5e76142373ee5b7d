// `npm run bench`: every benchmark in bench/, each printing ratios against a baseline measured in the same run.
const which = process.argv.slice(2);
const all = [
  'nifti',
  'segment',
  'jobs',
  'responsiveness',
  'refine',
  'load',
  'restart',
  'fuzz',
  'bodies',
  'soak',
  'viewer',
  'unet',
  'storage',
  'studies',
  'study-run',
  'dicom',
];
for (const name of which.length ? which : all) {
  await import(`./${name}.js`);
}
