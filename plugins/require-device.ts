// Built-in check: fails when the device has no usable report (never reported, stale, or a stored
// record that does not parse). Usually the first check, so later checks see a current record.
import { defineCheck } from '../src/policy/contract';
import { readNumber, readObject, rejectUnknownKeys } from '../src/policy/options';

interface RequireDeviceOptions {
  /** Overrides store.maxReportAgeHours for this check only (e.g. stricter for SMTP). */
  readonly maxReportAgeHours?: number;
}

const HOUR_MS = 3_600_000;

export default defineCheck<RequireDeviceOptions>({
  name: 'require-device',
  codes: ['UNKNOWN_DEVICE', 'MALFORMED_RECORD', 'STALE_REPORT'],

  parseOptions(raw) {
    const obj = readObject(raw, [], true);
    rejectUnknownKeys(obj, ['maxReportAgeHours']);
    if (obj.maxReportAgeHours === undefined) return {};
    return { maxReportAgeHours: readNumber(obj.maxReportAgeHours, ['maxReportAgeHours'], { min: 0 }) };
  },

  evaluate(facts, options) {
    switch (facts.deviceStatus) {
      case 'missing':
        return {
          verdict: 'fail',
          code: 'UNKNOWN_DEVICE',
          reason: facts.deviceId ? `no report for device ${facts.deviceId}` : 'the login carries no device id',
        };
      case 'malformed':
        return { verdict: 'fail', code: 'MALFORMED_RECORD', reason: 'stored device record does not parse' };
      case 'stale':
      case 'current': {
        const device = facts.device!;
        const reportedMs = Date.parse(device.reportedAt);
        const stale =
          options.maxReportAgeHours === undefined
            ? facts.deviceStatus === 'stale'
            : !(facts.now.getTime() - reportedMs <= options.maxReportAgeHours * HOUR_MS);
        if (!stale) return { verdict: 'pass' };
        return { verdict: 'fail', code: 'STALE_REPORT', reason: `last report ${device.reportedAt} is too old` };
      }
    }
  },
});
