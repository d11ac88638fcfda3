// The fake-device kit as a module (compiled: dist/src/kit): keys, signed reports, enrolment, login details.
export * from './fake-device';
export type { ReportPayload } from '../admin/reports';
