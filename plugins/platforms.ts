// Built-in check: fails when the device's platform is not allowed (allow list) or is denied (deny
// list), e.g. "laptops only" for a sensitive mailbox.
import { defineCheck, unknownUnlessCurrent } from '../src/policy/contract';
import { OptionError, readObject, readPlatformList, rejectUnknownKeys } from '../src/policy/options';

interface PlatformsOptions {
  readonly allow?: ReadonlySet<string>;
  readonly deny?: ReadonlySet<string>;
}

export default defineCheck<PlatformsOptions>({
  name: 'platforms',
  codes: ['PLATFORM_NOT_ALLOWED'],

  parseOptions(raw) {
    const obj = readObject(raw);
    rejectUnknownKeys(obj, ['allow', 'deny']);
    if (obj.allow === undefined && obj.deny === undefined) throw new OptionError([], 'expected `allow` or `deny` (a list of platform ids)');
    return {
      ...(obj.allow !== undefined ? { allow: new Set(readPlatformList(obj.allow, ['allow'])) } : {}),
      ...(obj.deny !== undefined ? { deny: new Set(readPlatformList(obj.deny, ['deny'])) } : {}),
    };
  },

  evaluate(facts, options) {
    const notCurrent = unknownUnlessCurrent(facts);
    if (notCurrent) return notCurrent;
    const platform = facts.device!.platform.toLowerCase();
    const denied = options.deny?.has(platform) || (options.allow !== undefined && !options.allow.has(platform));
    if (!denied) return { verdict: 'pass' };
    return { verdict: 'fail', code: 'PLATFORM_NOT_ALLOWED', reason: `platform ${platform} is not allowed` };
  },
});
