#!/usr/bin/env node
import type { StudyRunSummary } from '../shared/studies.js';
import { Command, CommanderError, Option } from 'commander';
import {
  type DicomUploadResult,
  type JobView,
  type SegExport,
  type StrokeviewClient,
  type StudyRunDetail,
  createClient,
} from '../sdk/index.js';
import type { ModelCheck } from '../server/segmentation/validate-model.js';
import { VERSION } from '../server/version.js';
import { CliError, EXIT, exitCodeOf, messageOf } from './exit.js';
import { progressReporter, runReporter } from './progress.js';

// `strokeview`: remote commands go through the SDK (--url/--token or STROKEVIEW_URL/STROKEVIEW_TOKEN);
// local ones (serve, worker, migrate, import, users, tokens) use the server's modules and its
// configuration (DATA_DIR, DATABASE_URL, …), loaded only when such a command runs.

interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
  waitForServer: string;
}

const program = new Command('strokeview')
  .description('Ischemic-stroke lesion segmentation on brain MRI: server, worker and client in one command.')
  .version(VERSION)
  .addOption(new Option('--url <url>', 'server URL').env('STROKEVIEW_URL').default('http://localhost:7860'))
  .addOption(new Option('--token <token>', 'API token').env('STROKEVIEW_TOKEN'))
  .option('--json', 'print one JSON document (for programs)')
  .option('--wait-for-server <seconds>', 'how long to wait out a sleeping or starting server (502/503/504, refused)', '180')
  .showHelpAfterError('(add --help for usage)')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  .addHelpText(
    'after',
    `
Exit codes: 0 done, 1 failed job or error, 2 bad usage, 3 cannot reach the server.

Examples:
  $ strokeview serve                                  # the app on http://localhost:7860
  $ strokeview users add me@example.org --admin       # prints a generated password
  $ strokeview tokens create laptop --user me@example.org
  $ export STROKEVIEW_TOKEN=svt_…
  $ strokeview cases list
  $ strokeview cases upload --dicom ./study           # a DICOM folder or .zip → a case
  $ strokeview segment <caseId> --wait
  $ strokeview masks download <jobId> -o mask.nii.gz
  $ strokeview masks export <jobId> --seg -o lesion.seg.dcm
  $ strokeview pacs push <jobId|versionId>           # the SEG into the PACS (STOW-RS)`,
  );

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
const json = () => Boolean(globals().json);

function client(): StrokeviewClient {
  const g = globals();
  const seconds = Number(g.waitForServer);
  if (!Number.isFinite(seconds) || seconds < 0) throw new CliError('--wait-for-server: give a number of seconds', EXIT.usage);
  return createClient({ url: g.url, ...(g.token ? { token: g.token } : {}), retry: { giveUpMs: seconds * 1000 } });
}

/** Prints a result: the JSON document with --json, else the human lines. */
function print(value: unknown, human: () => string) {
  process.stdout.write(json() ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

const table = (rows: string[][]) => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
};

function metricsLines(job: JobView): string {
  const m = job.result?.metrics;
  if (!m) return `job ${job.id}: ${job.status}${job.error ? ` — ${job.error}` : ''}`;
  const f = (x: number | null, digits = 3) => (x === null ? '—' : x.toFixed(digits));
  return [
    `job ${job.id}: ${job.status} (${job.modelIds.join(', ')})`,
    `  predicted lesion volume  ${f(m.predictedMl, 2)} mL in ${m.lesionCountPredicted} lesion(s)`,
    `  true lesion volume       ${f(m.trueMl, 2)} mL in ${m.lesionCountTrue ?? '—'} lesion(s)`,
    `  Dice                     ${f(m.dice)}`,
    `  |volume difference|      ${f(m.absVolumeDiffMl, 2)} mL`,
    `  lesion-wise F1           ${f(m.lesionF1)}`,
    ...job.result!.notes.map((n) => `  note: ${n}`),
    `  mask: ${job.result!.mask.downloadUrl}`,
  ].join('\n');
}

// ---- local commands -------------------------------------------------------------------------

program
  .command('serve')
  .description('run the server (API, viewer, in-process workers) with the configuration in the environment')
  .addHelpText('after', '\nExample:\n  $ PORT=7860 DATA_DIR=./data strokeview serve')
  .action(async () => {
    const [{ runService }, { startServerEarly }] = await Promise.all([import('../server/boot.js'), import('../server/start-early.js')]);
    await runService(startServerEarly);
  });

program
  .command('worker')
  .description('run segmentation workers alone, taking jobs from DATABASE_URL (GPU machines)')
  .addHelpText('after', '\nExample:\n  $ DATABASE_URL=postgres://… DATA_DIR=/shared strokeview worker')
  .action(async () => {
    const [{ runService }, { startWorker }] = await Promise.all([import('../server/boot.js'), import('../server/start-worker.js')]);
    await runService(startWorker);
  });

program
  .command('migrate')
  .description('bring the configured database to the latest schema and exit')
  .addHelpText('after', '\nExample:\n  $ DATABASE_URL=postgres://… strokeview migrate')
  .action(async () => {
    const { migrateTask } = await import('../server/tasks.js');
    const applied = await migrateTask();
    print({ applied }, () => (applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'schema is up to date'));
  });

program
  .command('import [dir]')
  .description("import an ISLES'22/'24 BIDS folder, or with --dicom a folder of DICOM studies (shared cases unless --owner is given)")
  .option(
    '--dicom <dir>',
    'a folder (or .zip) of DICOM studies: one case per study (dcm2niix; trace DWI and ADC from the diffusion series)',
  )
  .option('--owner <email>', 'the user who owns the imported cases')
  .option('--study <name>', "put the folder's cases in the owner's study of this name (made if missing; needs --owner)")
  .addHelpText(
    'after',
    '\nExamples:\n  $ strokeview import ./ISLES-2022 --owner me@example.org --study "ISLES 2022"\n  $ strokeview import --dicom /mnt/pacs-export --owner me@example.org',
  )
  .action(async (dir: string | undefined, o: { owner?: string; dicom?: string; study?: string }) => {
    if (!dir === !o.dicom) throw new CliError('import: give an ISLES folder, or --dicom <dir> (not both)', EXIT.usage);
    if (o.study !== undefined && o.dicom) throw new CliError('import: --study goes with an ISLES folder (not --dicom yet)', EXIT.usage);
    if (o.study !== undefined && !o.owner) throw new CliError('import: --study needs --owner (a study belongs to someone)', EXIT.usage);
    const { importTask, importDicomTask } = await import('../server/tasks.js');
    const onLine = json() ? {} : { onLine: (l: string) => process.stdout.write(`${l}\n`) };
    const report = o.dicom
      ? await importDicomTask(o.dicom, { ownerEmail: o.owner, ...onLine })
      : await importTask(dir!, { ownerEmail: o.owner, study: o.study, ...onLine });
    print(report, () =>
      [
        ...report.skipped.map((s) => `skipped ${s.path}: ${s.reason}`),
        `${report.imported.length} case(s) imported, ${report.skipped.length} item(s) skipped`,
      ].join('\n'),
    );
  });

const users = program.command('users').description('accounts (local: the configured database)');
users
  .command('add <email>')
  .description('add a user (a generated password is printed once), or with --admin make an existing one an administrator')
  .option('--admin', 'make the user an administrator')
  .option('--password-stdin', 'read the password from standard input instead of generating one')
  .addHelpText(
    'after',
    '\nExamples:\n  $ strokeview users add me@example.org --admin\n  $ printf %s "$PW" | strokeview users add you@example.org --password-stdin',
  )
  .action(async (email: string, o: { admin?: boolean; passwordStdin?: boolean }) => {
    let password: string | undefined;
    if (o.passwordStdin) {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      password = Buffer.concat(chunks)
        .toString('utf8')
        .replace(/\r?\n$/, '');
    }
    const { addUserTask } = await import('../server/tasks.js');
    const user = await addUserTask({ email, password, admin: Boolean(o.admin) });
    print(user, () =>
      [
        `${user.created ? 'added' : 'updated'} ${user.email} (${user.role})`,
        ...(user.password ? [`password: ${user.password}`, '(shown once; change it after signing in)'] : []),
      ].join('\n'),
    );
  });

const tokens = program.command('tokens').description('API tokens for the SDK, the CLI and REST (local: the configured database)');
tokens
  .command('create <name>')
  .description('create an API token for a user; the token is printed once')
  .requiredOption('--user <email>', 'whose token')
  .option('--expires-days <n>', 'expire after n days (default: never)')
  .addHelpText(
    'after',
    '\nExample:\n  $ export STROKEVIEW_TOKEN=$(strokeview tokens create laptop --user me@example.org --json | jq -r .token)',
  )
  .action(async (name: string, o: { user: string; expiresDays?: string }) => {
    const days = o.expiresDays === undefined ? undefined : Number(o.expiresDays);
    if (days !== undefined && !(Number.isInteger(days) && days > 0))
      throw new CliError('--expires-days: give a whole number of days', EXIT.usage);
    const { createTokenTask } = await import('../server/tasks.js');
    const created = await createTokenTask({ email: o.user, name, expiresInDays: days });
    print(created, () => created.token);
  });

// ---- remote commands (the SDK) --------------------------------------------------------------

const cases = program.command('cases').description('cases on the server');
cases
  .command('list')
  .description('the cases you may see (demo cases and your own)')
  .option('--search <text>', 'only names containing this')
  .addHelpText('after', '\nExample:\n  $ strokeview cases list --search phantom')
  .action(async (o: { search?: string }) => {
    const page = await client().cases.list.query({ limit: 100, ...(o.search ? { search: o.search } : {}) });
    print(page.items, () =>
      page.items.length
        ? table([['ID', 'NAME', 'SOURCE', 'VOLUMES'], ...page.items.map((c) => [c.id, c.name, c.source, c.roles.join(',')])])
        : 'no cases',
    );
  });

/** `--series dwi=701,adc=computed,flair=none` → the choice the server takes. */
function seriesChoice(text: string | undefined): { dwi?: string; adc?: string; flair?: string } | undefined {
  if (!text) return undefined;
  const choice: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const [role, ref] = pair.split('=').map((x) => x.trim());
    if (!role || !ref || !['dwi', 'adc', 'flair'].includes(role)) {
      throw new CliError('--series: give role=series pairs, e.g. dwi=701,adc=computed,flair=none', EXIT.usage);
    }
    choice[role] = ref;
  }
  return choice;
}

cases
  .command('upload')
  .description('upload a case from NIfTI files (.nii or .nii.gz), or from a DICOM study (--dicom: a folder or a .zip)')
  .option('--dwi <file>', 'diffusion-weighted image')
  .option('--adc <file>', 'apparent diffusion coefficient map')
  .option('--flair <file>', 'FLAIR image')
  .option('--mask <file>', 'ground-truth lesion mask (jobs then report Dice)')
  .option('--dicom <dir|zip>', 'a DICOM study: converted on the server, DWI and ADC from its diffusion series')
  .option('--series <role=series,...>', 'with --dicom: which series becomes which role (number or UID; adc=computed, flair=none)')
  .option('--dry-run', 'with --dicom: show the series and the roles they would get, store nothing')
  .option('--name <name>', 'case name (default: the DWI file name, or the DWI series description)')
  .addHelpText(
    'after',
    '\nExamples:\n  $ strokeview cases upload --name "patient 7" --dwi dwi.nii.gz --adc adc.nii.gz --mask lesion.nii.gz\n  $ strokeview cases upload --dicom ./study --dry-run\n  $ strokeview cases upload --dicom study.zip --series dwi=701,adc=computed',
  )
  .action(
    async (o: {
      dwi?: string;
      adc?: string;
      flair?: string;
      mask?: string;
      name?: string;
      dicom?: string;
      series?: string;
      dryRun?: boolean;
    }) => {
      if (o.dicom) {
        if (o.dwi || o.adc || o.flair || o.mask)
          throw new CliError('--dicom replaces --dwi/--adc/--flair/--mask: give one or the other', EXIT.usage);
        const series = seriesChoice(o.series);
        const result = await client().uploadDicom({
          source: o.dicom,
          ...(o.name ? { name: o.name } : {}),
          ...(series ? { series } : {}),
          ...(o.dryRun ? { dryRun: true } : {}),
        });
        print(result, () => dicomLines(result));
        return;
      }
      if (!o.dwi || !o.adc) throw new CliError('give --dwi and --adc (NIfTI files), or --dicom <dir|zip>', EXIT.usage);
      if (o.series || o.dryRun) throw new CliError('--series and --dry-run go with --dicom', EXIT.usage);
      const name =
        o.name ??
        o.dwi
          .split(/[\\/]/)
          .pop()!
          .replace(/\.nii(\.gz)?$/, '');
      const created = await client().uploadCase({
        name,
        dwi: o.dwi,
        adc: o.adc,
        ...(o.flair ? { flair: o.flair } : {}),
        ...(o.mask ? { mask: o.mask } : {}),
      });
      print(created, () => `uploaded ${created.id} "${created.name}" (${created.roles.join(', ')})`);
    },
  );

/** A DICOM import's report for people: the case, each series and its role with the reason, warnings, skipped files. */
function dicomLines(r: DicomUploadResult): string {
  const rep = r.import;
  const lines = [
    r.case ? `uploaded ${r.case.id} "${r.case.name}" (${r.case.roles.join(', ')})` : 'dry run: nothing stored',
    `study ${rep.studyInstanceUid}: ${rep.series.length} series, converted in ${(rep.timings.convertMs / 1000).toFixed(1)} s`,
    table([
      ['SERIES', 'DESCRIPTION', 'KIND', 'GRID', 'ROLE', 'WHY'],
      ...rep.series.map((s) => [
        String(s.seriesNumber ?? '?'),
        s.description,
        s.kind,
        s.dims ? `${s.dims.join('×')}${s.volumes > 1 ? `×${s.volumes}` : ''}` : '—',
        s.role ?? '—',
        s.reason,
      ]),
    ]),
    `  DWI: ${rep.roles.dwi.reason}`,
    `  ADC: ${rep.roles.adc.reason}`,
    ...(rep.roles.flair ? [`  FLAIR: ${rep.roles.flair.reason}`] : []),
    ...rep.warnings.map((w) => `warning: ${w}`),
    ...rep.skipped.map((s) => `skipped ${s.file}: ${s.reason}`),
  ];
  return lines.join('\n');
}

program
  .command('segment <caseId>')
  .description('queue a segmentation of a case; with --wait, show progress and print the metrics')
  .option('--model <id...>', 'model(s) to run; several make a majority-vote ensemble (default: the server default)')
  .option('--wait', 'wait for the job to end (Ctrl-C cancels the job)')
  .addHelpText(
    'after',
    '\nExamples:\n  $ strokeview segment 0b7c…e1 --wait\n  $ strokeview segment 0b7c…e1 --model adc-dwi-v2 adc-core-v1 --wait --json',
  )
  .action(async (caseId: string, o: { model?: string[]; wait?: boolean }) => {
    const sv = client();
    if (!o.wait) {
      const job = await sv.jobs.create.mutate({
        caseId,
        idempotencyKey: globalThis.crypto.randomUUID(),
        ...(o.model ? { modelIds: o.model } : {}),
      });
      print(job, () => `queued job ${job.id} (${job.modelIds.join(', ')}); follow it with \`strokeview jobs show ${job.id}\``);
      return;
    }
    const abort = new AbortController();
    const onSigint = () => {
      process.stderr.write('\ncancelling the job…\n');
      abort.abort();
    };
    process.once('SIGINT', onSigint);
    const progress = json() ? null : progressReporter(process.stderr);
    try {
      const job = await sv.segment(caseId, {
        ...(o.model ? { modelIds: o.model } : {}),
        signal: abort.signal,
        ...(progress ? { onProgress: (p) => progress.update(p) } : {}),
      });
      progress?.stop();
      print(job, () => metricsLines(job));
    } catch (err) {
      progress?.stop();
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
  });

const jobs = program.command('jobs').description('segmentation jobs');
jobs
  .command('list')
  .description('your jobs, newest first')
  .option('--case <caseId>', 'only this case')
  .addHelpText('after', '\nExample:\n  $ strokeview jobs list --case 0b7c…e1 --json')
  .action(async (o: { case?: string }) => {
    const page = await client().jobs.list.query({ limit: 100, ...(o.case ? { caseId: o.case } : {}) });
    print(page.items, () =>
      page.items.length
        ? table([
            ['ID', 'CASE', 'STATUS', 'PROGRESS', 'DICE', 'CREATED'],
            ...page.items.map((j) => [
              j.id,
              j.caseId,
              j.status,
              `${Math.round(j.progress)}%`,
              j.result?.metrics.dice?.toFixed(3) ?? '—',
              j.createdAt,
            ]),
          ])
        : 'no jobs',
    );
  });
jobs
  .command('show <jobId>')
  .description('one job: status, and when done its metrics')
  .addHelpText('after', '\nExample:\n  $ strokeview jobs show 5f1d…9a')
  .action(async (id: string) => {
    const job = await client().jobs.byId.query({ id });
    print(job, () => metricsLines(job));
  });
jobs
  .command('cancel <jobId>')
  .description('cancel a queued or running job')
  .addHelpText('after', '\nExample:\n  $ strokeview jobs cancel 5f1d…9a')
  .action(async (id: string) => {
    const job = await client().jobs.cancel.mutate({ id });
    print(job, () => `job ${job.id}: ${job.status}`);
  });

const studies = program.command('studies').description('studies: named sets of cases with members (owner, editor, viewer)');
studies
  .command('list')
  .description('the studies you are a member of, with your role')
  .addHelpText('after', '\nExample:\n  $ strokeview studies list --json')
  .action(async () => {
    const list = await client().studies.list.query();
    print(list, () =>
      list.length
        ? table([
            ['ID', 'NAME', 'ROLE', 'CASES', 'MEMBERS'],
            ...list.map((s) => [s.id, s.name, s.role ?? '(admin)', String(s.cases), String(s.members)]),
          ])
        : 'no studies',
    );
  });
studies
  .command('create <name>')
  .description('a new study; you are its owner')
  .option('--description <text>', 'what the study is for')
  .addHelpText('after', '\nExample:\n  $ strokeview studies create "Audit 2026" --description "thrombectomy audit"')
  .action(async (name: string, o: { description?: string }) => {
    const s = await client().studies.create.mutate({ name, ...(o.description ? { description: o.description } : {}) });
    print(s, () => `study ${s.id}: ${s.name}`);
  });
studies
  .command('show <studyId>')
  .description('a study: its members and cases')
  .addHelpText('after', '\nExample:\n  $ strokeview studies show 3c9e…41')
  .action(async (id: string) => {
    const s = await client().studies.byId.query({ id });
    print(s, () =>
      [
        `study ${s.id}: ${s.name} (you: ${s.role ?? 'admin'})`,
        ...s.memberList.map((m) => `  member ${m.email} — ${m.role}`),
        ...s.caseList.map((c) => `  case ${c.id} ${c.name}`),
      ].join('\n'),
    );
  });
studies
  .command('add-member <studyId> <email>')
  .description('add a member (or change their role); the study owner only')
  .addOption(new Option('--role <role>', 'their role').choices(['owner', 'editor', 'viewer']).default('viewer'))
  .addHelpText('after', '\nExample:\n  $ strokeview studies add-member 3c9e…41 rater2@example.org --role editor')
  .action(async (studyId: string, email: string, o: { role: 'owner' | 'editor' | 'viewer' }) => {
    const s = await client().studies.members.set.mutate({ studyId, email, role: o.role });
    print(s, () => `${email} is ${o.role === 'owner' ? 'an owner' : `${o.role === 'editor' ? 'an' : 'a'} ${o.role}`} of ${s.name}`);
  });
studies
  .command('add-cases <studyId> <caseIds...>')
  .description('add cases you own (or shared demo cases) to a study')
  .addHelpText('after', '\nExample:\n  $ strokeview studies add-cases 3c9e…41 0b7c…e1 5d2a…07')
  .action(async (studyId: string, caseIds: string[]) => {
    const r = await client().studies.cases.add.mutate({ studyId, caseIds });
    print(r, () => `${r.added} case(s) added`);
  });

function runLines(r: StudyRunDetail): string {
  const f = (x: number | null | undefined, digits = 3) => (x === null || x === undefined ? '—' : x.toFixed(digits));
  return [
    `run ${r.id}: ${r.status} (${r.modelId}) — ${r.succeeded}/${r.total} done, ${r.failed} failed, ${r.cancelled} cancelled${r.reused ? `, ${r.reused} reused` : ''}`,
    ...(r.cases.length
      ? [
          table([
            ['CASE', 'STATUS', 'DICE', 'PRED mL', 'TRUE mL', 'LESION F1'],
            ...r.cases.map((c) => [
              c.caseName,
              c.status,
              f(c.metrics?.dice),
              f(c.metrics?.predictedMl, 2),
              f(c.metrics?.trueMl, 2),
              f(c.metrics?.lesionF1),
            ]),
          ]),
        ]
      : []),
  ].join('\n');
}

studies
  .command('run <studyId>')
  .description("run a model over a study's cases (one study run); earlier results of the model are reused unless --rerun")
  .option('--model <id>', 'the model (default: the server default)')
  .option('--case <caseId...>', 'only these cases of the study')
  .option('--rerun', 'queue every case again, even those with a result of this model')
  .option('--wait', 'wait for the run to end, with one progress line (Ctrl-C cancels the rest of the run)')
  .addHelpText(
    'after',
    '\nExamples:\n  $ strokeview studies run 3c9e…41 --model adc-dwi-v2 --wait\n  $ strokeview studies run 3c9e…41 --rerun --json',
  )
  .action(async (studyId: string, o: { model?: string; case?: string[]; rerun?: boolean; wait?: boolean }) => {
    const sv = client();
    const opts = { ...(o.model ? { modelId: o.model } : {}), ...(o.case ? { caseIds: o.case } : {}), ...(o.rerun ? { rerun: true } : {}) };
    if (!o.wait) {
      const run = await sv.studies.run.mutate({ studyId, ...opts });
      print(
        run,
        () =>
          `started run ${run.id} over ${run.total} case(s) (${run.reused} reused); follow it with \`strokeview studies runs show ${run.id}\``,
      );
      return;
    }
    const abort = new AbortController();
    const onSigint = () => {
      process.stderr.write('\ncancelling the run…\n');
      abort.abort();
    };
    process.once('SIGINT', onSigint);
    const progress = json() ? null : runReporter(process.stderr);
    try {
      const run = await sv.runStudy(studyId, {
        ...opts,
        signal: abort.signal,
        ...(progress ? { onProgress: (r) => progress.update(r) } : {}),
      });
      progress?.stop();
      print(run, () => runLines(run));
      if (run.status !== 'succeeded') process.exitCode = EXIT.failed;
    } catch (err) {
      progress?.stop();
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
  });
studies
  .command('export <studyId>')
  .description('the study table as CSV (one row per case × run) or its results as a BIDS derivatives zip')
  .addOption(new Option('--format <format>', 'csv or bids').choices(['csv', 'bids']).default('csv'))
  .requiredOption('-o, --output <file>', 'where to write it')
  .option('--run <runId>', 'one run (default: the newest run of each model)')
  .option('--corrected', "BIDS: add each rater's latest corrected mask")
  .addHelpText(
    'after',
    '\nExamples:\n  $ strokeview studies export 3c9e…41 -o audit.csv\n  $ strokeview studies export 3c9e…41 --format bids --corrected -o audit-bids.zip',
  )
  .action(async (studyId: string, o: { format: 'csv' | 'bids'; output: string; run?: string; corrected?: boolean }) => {
    const saved = await client().exportStudy(
      studyId,
      { format: o.format, ...(o.run ? { runId: o.run } : {}), ...(o.corrected ? { corrected: true } : {}) },
      o.output,
    );
    print(saved, () => `wrote ${saved.path} (${saved.bytes} bytes)`);
  });
const studyRuns = studies.command('runs').description("a study's runs");
studyRuns
  .command('list <studyId>')
  .description("a study's runs, newest first")
  .action(async (studyId: string) => {
    // every run, a page at a time (runs.list stops at the newest 100)
    const list: StudyRunSummary[] = [];
    let cursor: string | undefined;
    do {
      const page = await client().studies.runs.page.query({ studyId, limit: 100, ...(cursor ? { cursor } : {}) });
      list.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    print(list, () =>
      list.length
        ? table([
            ['ID', 'MODEL', 'STATUS', 'DONE', 'FAILED', 'CANCELLED', 'TOTAL', 'CREATED'],
            ...list.map((r) => [
              r.id,
              r.modelId,
              r.status,
              String(r.succeeded),
              String(r.failed),
              String(r.cancelled),
              String(r.total),
              r.createdAt,
            ]),
          ])
        : 'no runs',
    );
  });
studyRuns
  .command('show <runId>')
  .description('a run: its progress and a row per case with the metrics')
  .action(async (id: string) => {
    const run = await client().studies.runs.byId.query({ id });
    print(run, () => runLines(run));
  });
studyRuns
  .command('cancel <runId>')
  .description('cancel the rest of a run')
  .action(async (id: string) => {
    const run = await client().studies.runs.cancel.mutate({ id });
    print(run, () => runLines(run));
  });

const masks = program.command('masks').description('predicted and corrected masks');
masks
  .command('download <id>')
  .description("download a job's predicted mask (job id) or a saved corrected mask (version id)")
  .requiredOption('-o, --output <file>', 'where to write the .nii.gz')
  .addHelpText('after', '\nExample:\n  $ strokeview masks download 5f1d…9a -o lesion.nii.gz')
  .action(async (id: string, o: { output: string }) => {
    const sv = client();
    let url: string;
    try {
      const job = await sv.jobs.byId.query({ id });
      if (!job.result) throw new CliError(`job ${id} has no mask yet (${job.status})`, EXIT.failed);
      url = job.result.mask.downloadUrl;
    } catch (err) {
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
      url = (await sv.masks.byId.query({ id })).volume.downloadUrl;
    }
    const saved = await sv.download(url, o.output);
    print(saved, () => `wrote ${saved.path} (${saved.bytes} bytes)`);
  });

masks
  .command('export <id>')
  .description("export a job's predicted mask (job id) or a corrected version (version id) of a DICOM-imported case")
  .requiredOption('--seg', 'as a DICOM SEG (the only export format so far; NIfTI is `masks download`)')
  .requiredOption('-o, --output <file>', 'where to write the .dcm')
  .addHelpText('after', '\nExample:\n  $ strokeview masks export 5f1d…9a --seg -o lesion.seg.dcm')
  .action(async (id: string, o: { output: string }) => {
    const sv = client();
    let saved: SegExport & { path: string; bytes: number };
    try {
      saved = await sv.exportSeg({ jobId: id }, o.output);
    } catch (err) {
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
      saved = await sv.exportSeg({ maskVersionId: id }, o.output);
    }
    print(
      saved,
      () =>
        `wrote ${saved.path} (${saved.bytes} bytes): DICOM SEG, ${saved.frames} frames, ${saved.algorithmType}, series ${saved.seriesInstanceUid}`,
    );
  });

const pacs = program.command('pacs').description("the server's PACS over DICOMweb (the server's PACS_URL)");
pacs
  .command('search')
  .description('search the PACS for studies (QIDO-RS)')
  .option('--patient-id <id>', 'PatientID')
  .option('--date <YYYYMMDD[-YYYYMMDD]>', 'StudyDate or a range')
  .option('--study <uid>', 'StudyInstanceUID')
  .action(async (o: { patientId?: string; date?: string; study?: string }) => {
    const found = await client().pacs.search.query({
      ...(o.patientId ? { patientId: o.patientId } : {}),
      ...(o.date ? { studyDate: o.date } : {}),
      ...(o.study ? { studyInstanceUid: o.study } : {}),
    });
    print(found, () =>
      found.length
        ? found
            .map((s) =>
              `${s.studyInstanceUid}  ${s.studyDate ?? '-'}  ${s.modalities.join('/') || '-'}  ${s.series ?? '?'} series  ${s.studyDescription ?? ''}`.trimEnd(),
            )
            .join('\n')
        : 'no studies found',
    );
  });
pacs
  .command('pull <studyUid>')
  .description('import a study from the PACS as a case (WADO-RS, then the DICOM import)')
  .option('--name <name>', 'case name (default: the DWI series description)')
  .option('--dry-run', 'show the series and the roles they would get, store nothing')
  .action(async (studyUid: string, o: { name?: string; dryRun?: boolean }) => {
    const result = await client().pacs.pull.mutate({
      studyInstanceUid: studyUid,
      ...(o.name ? { name: o.name } : {}),
      dryRun: Boolean(o.dryRun),
    });
    print(result, () => `${result.instances} instance(s) retrieved\n${dicomLines(result)}`);
  });
pacs
  .command('push <id>')
  .description("send a job's mask (job id) or a corrected version (version id) to the PACS as a DICOM SEG, and wait for the PACS's answer")
  .addHelpText('after', '\nExample:\n  $ strokeview pacs push 5f1d…9a')
  .action(async (id: string) => {
    const sv = client();
    const onUpdate = json()
      ? undefined
      : (p: { status: string; attempts: number; error: string | null }) =>
          process.stderr.write(`${p.status}${p.attempts ? ` (attempt ${p.attempts})` : ''}${p.error ? `: ${p.error}` : ''}\n`);
    let push: Awaited<ReturnType<typeof sv.pushToPacs>>;
    try {
      push = await sv.pushToPacs({ jobId: id }, onUpdate ? { onUpdate } : {});
    } catch (err) {
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
      push = await sv.pushToPacs({ maskVersionId: id }, onUpdate ? { onUpdate } : {});
    }
    print(push, () =>
      push.status === 'succeeded'
        ? `stored in the PACS: study ${push.studyInstanceUid}, SEG series ${push.seriesInstanceUid}, instance ${push.sopInstanceUid}` +
          (push.adcSeriesInstanceUid ? `\nand the computed ADC as derived MR series ${push.adcSeriesInstanceUid}` : '')
        : `not stored: ${push.error ?? 'no reason given'}`,
    );
    if (push.status !== 'succeeded') process.exitCode = EXIT.failed;
  });

const models = program
  .command('models')
  .description('the models the server can run (`models check <folder>`: validate a model folder here, without a server)')
  .addHelpText('after', '\nExamples:\n  $ strokeview models --json\n  $ strokeview models check ./my-model')
  .action(async () => {
    const list = await client().models.list.query();
    const mm = (s: number[] | null) => (s ? `${s.join('×')} mm` : 'native');
    print(list, () =>
      table([
        ['ID', 'KIND', 'METHOD', 'VERSION', 'INPUTS', 'SPACING', 'ORIENTATION', 'NAME'],
        ...list.map((m) => [m.id, m.kind, m.method, m.version, m.inputs.join(','), mm(m.spacingMm), m.orientation, m.name]),
      ]),
    );
  });
models
  .command('check <folder>')
  .description(
    'validate a model folder as the server loads it (manifest, the ONNX graph against it, a dry run) and print what it found; exit 1 on a problem',
  )
  .addHelpText('after', '\nExample:\n  $ MODEL_MAX_MB=4096 strokeview models check ./models/my-nnunet')
  .action(async (folder: string) => {
    const [{ parseEnv }, { checkConfiguredModelFolder }] = await Promise.all([
      import('../server/env.js'),
      import('../server/segmentation/models.js'),
    ]);
    const check = await checkConfiguredModelFolder(folder, parseEnv());
    const ok = check.problems.length === 0;
    print({ ok, ...check }, () => modelCheckLines(check));
    if (!ok) process.exitCode = EXIT.failed;
  });

type ModelCheckView = ModelCheck & { provider: string };

/** `models check`'s human report: what the folder holds, then the problems (or "ok"). */
function modelCheckLines(c: ModelCheckView): string {
  const m = c.manifest;
  const shape = (s: (number | string)[] | null) => (s ? `[${s.join(', ')}]` : '[?]');
  const rows: [string, string][] = [];
  if (m) {
    const seg = m.kind === 'interactive' ? null : m;
    const channels = m.kind === 'interactive' ? m.inputs.length + 2 + (m.previousMask ? 1 : 0) : m.inputs.length;
    rows.push(['kind', m.kind === 'interactive' ? `interactive (${m.method})` : `segmentation (${m.kind})`]);
    rows.push(['version', m.version]);
    rows.push([
      'inputs',
      `${m.inputs.join(', ')}${m.kind === 'interactive' ? ` + 2 guidance${m.previousMask ? ' + previous mask' : ''}` : ''} → ${channels} channel${channels === 1 ? '' : 's'}, ${seg?.inputType ?? 'float32'}`,
    ]);
    rows.push(['preprocessing', m.preprocessing.map((p) => p.kind).join(', ')]);
    if (seg) {
      rows.push(['spacing', seg.spacingMm ? `${seg.spacingMm.join(' × ')} mm` : 'native (no resampling)']);
      rows.push(['orientation', seg.orientation]);
      rows.push([
        'patch size',
        seg.patchSize
          ? `${seg.patchSize.join(' × ')} (x, y, z), overlap ${seg.overlap}, ${seg.blend} blending`
          : 'none: the whole volume at once',
      ]);
      rows.push(['mirroring', seg.mirroring.length ? `axes ${seg.mirroring.join(', ')}` : 'off']);
      const lesion = seg.output.lesionClasses ?? [seg.output.lesionClass];
      const channelsOut = seg.output.classes ?? c.dryRun?.outputShape[1];
      rows.push([
        'output',
        `${seg.output.name !== undefined ? `\`${seg.output.name}\`` : `#${seg.output.index}`}, ${seg.output.activation}, ${channelsOut ?? '?'} class${channelsOut === 1 ? '' : 'es'}${channelsOut === 1 ? '' : `, lesion class${lesion.length === 1 ? '' : 'es'} ${lesion.join(', ')}`}, threshold ${seg.threshold}`,
      ]);
    } else if (m.kind === 'interactive') {
      rows.push(['crop', `${m.cropMm.join(' × ')} mm around the clicks`]);
      rows.push(['output', `${m.output.activation}, threshold ${m.threshold}`]);
    }
    rows.push(['axis order', m.axisOrder]);
  }
  if (c.fileBytes !== null)
    rows.push([
      'model file',
      c.fileBytes < 1024 * 1024 ? `${(c.fileBytes / 1024).toFixed(1)} KiB` : `${(c.fileBytes / 1024 / 1024).toFixed(1)} MiB`,
    ]);
  if (c.graph) {
    for (const i of c.graph.inputs) rows.push(['graph input', `\`${i.name}\` ${i.type ?? 'not a tensor'} ${shape(i.shape)}`]);
    for (const o of c.graph.outputs) rows.push(['graph output', `\`${o.name}\` ${o.type ?? 'not a tensor'} ${shape(o.shape)}`]);
  }
  if (c.dryRun) {
    rows.push([
      'dry run',
      `${shape(c.dryRun.inputShape)} → \`${c.dryRun.outputName}\` ${shape(c.dryRun.outputShape)} in ${c.dryRun.ms.toFixed(1)} ms (${c.provider})`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    `model ${c.id} (${c.dir}): ${c.problems.length ? `${c.problems.length} problem${c.problems.length === 1 ? '' : 's'}` : 'ok'}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    ...c.problems.map((p) => `  problem: ${p}`),
  ].join('\n');
}

// ---- run --------------------------------------------------------------------------------------

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, successfully.
    process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  const code = exitCodeOf(err);
  // --json: still one document — the job as it ended (failed, cancelled), or the error.
  const job = (err as { job?: JobView }).job;
  if (json())
    process.stdout.write(
      `${JSON.stringify(job ?? { error: messageOf(err), code: (err as { code?: string }).code ?? null, exitCode: code }, null, 2)}\n`,
    );
  else process.stderr.write(`strokeview: ${messageOf(err)}\n`);
  process.exit(code);
}
