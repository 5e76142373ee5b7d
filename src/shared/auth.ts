import { z } from 'zod';
import { plainText } from './text.js';

export const roleSchema = z.enum(['user', 'admin', 'guest']);
export type Role = z.infer<typeof roleSchema>;

export const emailSchema = z
  .email({ message: 'Enter a valid email address' })
  .max(254)
  .transform((e) => e.trim().toLowerCase());

export const passwordSchema = z
  .string()
  .min(10, { message: 'Password must be at least 10 characters' })
  .max(256, { message: 'Password must be at most 256 characters' });

export const credentialsSchema = z.object({ email: emailSchema, password: z.string().min(1).max(256) });
export const registerSchema = z.object({ email: emailSchema, password: passwordSchema });
export const changePasswordSchema = z.object({ current: z.string().min(1).max(256), next: passwordSchema });

export const createTokenSchema = z.object({
  name: plainText('The token name').trim().min(1, { message: 'Give the token a name' }).max(100),
  expiresInDays: z.number().int().min(1).max(3650).optional(),
});
export const idSchema = z.object({ id: z.uuid({ message: 'Not a valid id' }) });

/** A user as the API returns it. */
export const publicUserSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  role: roleSchema,
  disabled: z.boolean(),
  createdAt: z.string(),
});
export type PublicUser = z.infer<typeof publicUserSchema>;

export interface ApiTokenInfo {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}
