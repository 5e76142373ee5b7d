import { z } from 'zod';
import { plainText } from './text.js';

/** What a member may do in a study: owner manages it; editor runs models and saves masks; viewer reads. */
export const STUDY_ROLES = ['owner', 'editor', 'viewer'] as const;
export const studyRoleSchema = z.enum(STUDY_ROLES);
export type StudyRole = z.infer<typeof studyRoleSchema>;

export const studyNameSchema = plainText('The study name').trim().min(1, { message: 'Give the study a name' }).max(200);
export const studyIdSchema = z.object({ id: z.uuid({ message: 'Not a valid study id' }) });

export const createStudySchema = z.object({
  name: studyNameSchema,
  description: plainText('The description').trim().max(2000).default(''),
});

export const studyMemberInputSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  email: z.email({ message: 'Not an email address' }).max(320),
  role: studyRoleSchema,
});

export const removeStudyMemberSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  userId: z.uuid({ message: 'Not a valid user id' }),
});

export const studyCasesInputSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  caseIds: z
    .array(z.uuid({ message: 'Not a valid case id' }))
    .min(1, { message: 'Name at least one case' })
    .max(1000),
});

export const studyMemberSchema = z.object({
  userId: z.uuid(),
  email: z.string(),
  role: studyRoleSchema,
  addedAt: z.string(),
});
export type StudyMember = z.infer<typeof studyMemberSchema>;

export const studySummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string(),
  /** The caller's role in it (an admin who is not a member: null). */
  role: studyRoleSchema.nullable(),
  cases: z.number().int(),
  members: z.number().int(),
  createdAt: z.string(),
});
export type StudySummary = z.infer<typeof studySummarySchema>;

export const studyCaseSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  subjectId: z.string().nullable(),
  addedAt: z.string(),
});

export const studyDetailSchema = studySummarySchema.extend({
  memberList: z.array(studyMemberSchema),
  caseList: z.array(studyCaseSchema),
});
export type StudyDetail = z.infer<typeof studyDetailSchema>;
