// Built-in check: fails when the device is not managed by the organisation's MDM.
import { defineCheck, unknownUnlessCurrent } from '../src/policy/contract';
import { readObject, rejectUnknownKeys } from '../src/policy/options';

export default defineCheck<Record<string, never>>({
  name: 'managed-only',
  codes: ['UNMANAGED_DEVICE'],

  parseOptions(raw) {
    rejectUnknownKeys(readObject(raw, [], true), []);
    return {};
  },

  evaluate(facts) {
    const notCurrent = unknownUnlessCurrent(facts);
    if (notCurrent) return notCurrent;
    if (facts.device!.managed) return { verdict: 'pass' };
    return { verdict: 'fail', code: 'UNMANAGED_DEVICE', reason: 'device is not managed by the MDM' };
  },
});
