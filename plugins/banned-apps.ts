// Built-in check: fails when the device reports an installed app that is banned on its platform
// (e.g. TikTok on phones). Detects only; policy.yaml decides what a failure does.
import { defineCheck, unknownUnlessCurrent } from '../src/policy/contract';
import { OptionError, readMap, readObject, readString, readStringList, rejectUnknownKeys } from '../src/policy/options';

interface BannedAppsOptions {
  /** platform → lower-cased banned app ids. */
  readonly apps: ReadonlyMap<string, ReadonlySet<string>>;
  /** lower-cased app id → display name for the user's sentence. */
  readonly names: ReadonlyMap<string, string>;
}

export default defineCheck<BannedAppsOptions>({
  name: 'banned-apps',

  parseOptions(raw) {
    const obj = readObject(raw);
    rejectUnknownKeys(obj, ['apps', 'names']);
    if (obj.apps === undefined) throw new OptionError(['apps'], 'required (platform → list of app ids)');
    // An empty list is an error, not "nothing is banned": a typo must not silently allow everyone.
    const apps = readMap(obj.apps, ['apps'], (v, p) => new Set(readStringList(v, p).map((id) => id.toLowerCase())));
    if (apps.size === 0) throw new OptionError(['apps'], 'expected at least one platform');
    const byPlatform = new Map([...apps].map(([platform, ids]) => [platform.toLowerCase(), ids]));
    const names = readMap(obj.names, ['names'], readString, true);
    return {
      apps: byPlatform,
      names: new Map([...names].map(([id, name]) => [id.toLowerCase(), name])),
    };
  },

  evaluate(facts, options) {
    const notCurrent = unknownUnlessCurrent(facts);
    if (notCurrent) return notCurrent;
    const device = facts.device!;
    const banned = options.apps.get(device.platform.toLowerCase());
    if (!banned) return { verdict: 'pass' };
    if (device.apps === undefined) {
      return {
        verdict: 'unknown',
        code: 'INVENTORY_UNAVAILABLE',
        reason: `the ${device.platform} report carries no app inventory`,
      };
    }
    const found = [...new Set(device.apps.map((id) => id.toLowerCase()).filter((id) => banned.has(id)))];
    if (found.length === 0) return { verdict: 'pass' };
    const names = [...new Set(found.map((id) => options.names.get(id) ?? id))];
    return {
      verdict: 'fail',
      code: 'BANNED_APP',
      reason: `banned app installed: ${found.join(', ')}`,
      vars: { app: names.join(', '), appId: found.join(', ') },
    };
  },
});
