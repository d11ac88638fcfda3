// The fake-device kit as a module: `import { makeReporterKeys, signReport, ... } from 'mailwarden/kit'`.
export * from './fake-device';
export type { ReportPayload } from '../admin/reports';
