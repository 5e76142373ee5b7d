import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely';

export type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface AppSettingsTable {
  key: string;
  value: ColumnType<unknown, string, string>;
  updated_at: Timestamp;
}
export type AppSetting = Selectable<AppSettingsTable>;
export type NewAppSetting = Insertable<AppSettingsTable>;
export type AppSettingUpdate = Updateable<AppSettingsTable>;

export interface Database {
  app_settings: AppSettingsTable;
}
