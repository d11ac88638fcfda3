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
  codes: ['BANNED_APP', 'INVENTORY_UNAVAILABLE'],

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
    const ids = new Set<string>();
    const seen = new Set<string>();
    for (const app of device.apps) {
      const id = app.toLowerCase();
      if (banned.has(id)) ids.add(id), seen.add(id);
    }
    // Sources that give display names only (Intune's detectedApps) are matched on the names the
    // policy gives the banned ids ("TikTok"), so one entry covers both kinds of inventory.
    const bannedByName = new Map([...banned].filter((id) => options.names.has(id)).map((id) => [nameKey(options.names.get(id)!), id]));
    for (const name of device.appNames ?? []) {
      const id = bannedByName.get(nameKey(name));
      if (id) ids.add(id), seen.add(name);
    }
    if (ids.size === 0) return { verdict: 'pass' };
    const names = [...new Set([...ids].map((id) => options.names.get(id) ?? id))];
    return {
      verdict: 'fail',
      code: 'BANNED_APP',
      reason: `banned app installed: ${[...seen].join(', ')}`,
      vars: { app: names.join(', '), appId: [...ids].join(', ') },
    };
  },
});

/** Display names compare case-insensitively and without the ".app" of macOS bundles ("TikTok.app"). */
function nameKey(name: string): string {
  return name.trim().toLowerCase().replace(/\.app$/, '');
}
